"""tq's Redis broker: :class:`tq_transport_redis.transport.RedisTransport`."""
