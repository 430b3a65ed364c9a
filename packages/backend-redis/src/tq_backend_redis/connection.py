"""Redis clients from tq URLs and options: ``redis://``, ``rediss://`` and ``sentinel://``.

``rediss://`` connects over TLS and verifies the server's certificate unless
``ssl_cert_reqs`` says otherwise. ``sentinel://host:26379;sentinel://other:26379/0``
lists Sentinels, asked for the master named by the ``master_name`` option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from tq.errors import ImproperlyConfigured

# Options passed to redis-py as they are: the connection pool and its sockets.
POOL_OPTIONS: Final = (
    "max_connections",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "retry_on_timeout",
    "client_name",
    "username",
    "password",
)
TLS_OPTIONS: Final = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)


def connect(url: str, options: Mapping[str, Any]) -> redis.Redis:
    """A client (with its own connection pool) for ``url``."""
    scheme = url.partition("://")[0]
    names = POOL_OPTIONS + (TLS_OPTIONS if scheme in ("rediss", "sentinel") else ())
    kwargs = {name: options[name] for name in names if name in options}
    if scheme == "sentinel":
        return _sentinel_master(url, options, kwargs)
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"not a Redis URL: {url!r}")
    return redis.Redis.from_url(url, **kwargs)


def database(client: redis.Redis) -> int:
    """The database number ``client`` selects (kombu puts it in fanout channel names)."""
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def _sentinel_master(url: str, options: Mapping[str, Any], kwargs: dict[str, Any]) -> redis.Redis:
    master_name = options.get("master_name")
    if not master_name:
        raise ImproperlyConfigured(
            "sentinel:// URLs need the master's name: set the transport option "
            "'master_name' (broker_transport_options or result_backend_transport_options)"
        )
    hosts: list[tuple[str, int]] = []
    password = db = None
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        hosts.append((parsed.hostname or "localhost", parsed.port or 26379))
        password = password or (unquote(parsed.password) if parsed.password else None)
        if parsed.path.strip("/"):
            db = int(parsed.path.strip("/"))
    if password and "password" not in kwargs:
        kwargs["password"] = password
    # redis-py leaves Sentinel untyped.
    sentinel = Sentinel(hosts, sentinel_kwargs=options.get("sentinel_kwargs"), **kwargs)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(str(master_name), db=db or 0)  # type: ignore[no-untyped-call]
    return master
