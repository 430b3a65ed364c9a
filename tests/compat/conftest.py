"""Redis fixtures for the Celery interoperability tests."""

from tests.transport_redis.redis_services import (  # noqa: F401 - fixtures
    key_prefix,
    redis_url,
)
