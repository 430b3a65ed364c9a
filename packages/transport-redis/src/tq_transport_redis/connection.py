"""Redis clients from tq URLs and options: ``redis://``, ``rediss://`` and ``sentinel://``.

``rediss://`` connects over TLS and verifies the server's certificate unless
``ssl_cert_reqs`` says otherwise. ``sentinel://host:26379;sentinel://other:26379/0``
lists Sentinels, asked for the master named by the ``master_name`` option; the master
is reached over TLS when any TLS option is set (``sentinel_kwargs`` configures the
connections to the Sentinels themselves).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis
from redis.client import PubSub
from redis.sentinel import MasterNotFoundError, Sentinel

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


def await_confirmations(pubsub: PubSub, kind: str, count: int, timeout: float = 5.0) -> None:
    """Return once Redis confirmed ``count`` subscriptions of ``kind`` (``subscribe`` or
    ``psubscribe``) on ``pubsub``: only then is every later publish sure to reach it.

    Raises:
        redis.ConnectionError: not confirmed within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise redis.ConnectionError(f"Redis did not confirm the {kind} within {timeout}s")
        reply = pubsub.get_message(timeout=min(remaining, 0.5))
        if reply is not None and reply["type"] == kind:
            count -= 1


def explain(exc: redis.RedisError) -> str:
    """``exc``'s text, followed by the likely fix when the cause is a common misconfiguration."""
    text = str(exc).rstrip(".")
    if isinstance(exc, MasterNotFoundError):
        return (
            f"{text}: check the 'master_name' option and that the Sentinels in the URL "
            "are reachable and monitor that master"
        )
    if _caused_by(exc, ssl.SSLCertVerificationError):
        return (
            f"{text}: TLS certificate verification failed; set the option 'ssl_ca_certs' "
            "to the file of the CA that signed the server's certificate (and "
            "'ssl_check_hostname' to False if the certificate does not name this host)"
        )
    return str(exc)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: cause chains can be cyclic
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
    if any(name in kwargs for name in TLS_OPTIONS):
        # redis-py reaches the master over TLS only when told so; without this the
        # TLS options go to a plain connection, which rejects them.
        kwargs["ssl"] = True
    # redis-py leaves Sentinel untyped.
    sentinel = Sentinel(hosts, sentinel_kwargs=options.get("sentinel_kwargs"), **kwargs)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(str(master_name), db=db or 0)  # type: ignore[no-untyped-call]
    return master
