"""Redis fixtures shared by the Redis transport, backend, end-to-end and Celery tests."""

from tests.transport_redis.redis_services import (  # noqa: F401 - fixtures
    key_prefix,
    private_redis,
    redis_url,
)
