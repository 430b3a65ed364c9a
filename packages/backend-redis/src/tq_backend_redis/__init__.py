"""tq's Redis result backend: :class:`tq_backend_redis.backend.RedisBackend`."""
