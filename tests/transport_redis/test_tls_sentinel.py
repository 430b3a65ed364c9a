"""The Redis broker and result backend over TLS (``rediss://``) and through Sentinel.

Every test starts its own servers: ``redis-server`` with only a TLS port and a
certificate from a throwaway CA made with the ``openssl`` command, and Sentinels
(``redis-sentinel``, or ``redis-server --sentinel``) watching private masters. A test
whose binaries are missing, or whose ``redis-server`` was built without TLS, is skipped
with the reason; nothing is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from tests.e2e.conftest import TASKS_MODULE, WorkerProcess, run_client
from tests.transport_redis.redis_services import free_port
from tq.errors import BackendError, TqError, TransportError
from tq.message import Message
from tq.transport import Queue
from tq_backend_redis.backend import RedisBackend
from tq_transport_redis.transport import RedisTransport

T = TypeVar("T")
MASTER = "mymaster"


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate naming ``localhost`` only, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _make_certificates(directory: Path) -> Certificates:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        directory,
        *("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"),
        *("-subj", "/CN=tq test CA", "-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    # The server's certificate names localhost but not 127.0.0.1, so the hostname
    # check can be seen at work.
    uses = {"server": "serverAuth\nsubjectAltName=DNS:localhost", "client": "clientAuth"}
    for name, usage in uses.items():
        (directory / f"{name}.ext").write_text(
            f"authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\nextendedKeyUsage={usage}\n"
        )
        _openssl(
            directory,
            *("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr"),
            *("-subj", f"/CN=tq test {name}"),
        )
        _openssl(
            directory,
            *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
            *("-CAcreateserial", "-out", f"{name}.pem", "-days", "2"),
            *("-extfile", f"{name}.ext"),
        )
    return Certificates(
        *(directory / name for name in ("ca.pem", "server.pem", "server.key")),
        *(directory / name for name in ("client.pem", "client.key")),
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Servers:
    """``redis-server`` and Sentinel processes of one test (or module), stopped together."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def redis(self, *args: str) -> int:
        """A master (or, with ``--replicaof``, a replica) on a free plain port."""
        port = free_port()
        self._start(["redis-server", "--port", str(port), *self._common(port), *args], port)
        return port

    def tls_redis(self, certs: Certificates, *args: str) -> int:
        """A server listening on a TLS port only."""
        port = free_port()
        argv = ["redis-server", "--port", "0", "--tls-port", str(port), *self._common(port)]
        self._start([*argv, *_tls_arguments(certs), *args], port)
        return port

    def sentinel(self, master_port: int, *lines: str, tls: Certificates | None = None) -> int:
        """A Sentinel watching the master on ``master_port`` under the name ``MASTER``.

        With ``tls``, the Sentinel listens on a TLS port only and speaks TLS to the master.
        """
        port = free_port()
        listen = [f"port {port}"]
        if tls is not None:
            listen = [
                *("port 0", f"tls-port {port}", "tls-replication yes", "tls-auth-clients no"),
                *(f"tls-cert-file {tls.server_cert}", f"tls-key-file {tls.server_key}"),
                f"tls-ca-cert-file {tls.ca}",
            ]
        config = self.directory / f"sentinel-{port}.conf"  # Sentinel rewrites it
        config.write_text(
            "\n".join(
                [
                    *listen,
                    *("bind 127.0.0.1", f"dir {self.directory}"),
                    f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1",
                    *lines,
                ]
            )
            + "\n"
        )
        if shutil.which("redis-sentinel"):
            self._start(["redis-sentinel", str(config)], port)
        else:
            self._start(["redis-server", str(config), "--sentinel"], port)
        return port

    def _common(self, port: int) -> list[str]:
        return [
            *("--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(self.directory), "--dbfilename", f"dump-{port}.rdb"),
        ]

    def _start(self, argv: list[str], port: int) -> None:
        log = self.directory / f"server-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.processes[port] = process
        deadline = time.monotonic() + 10
        while not _accepts(port):
            if process.poll() is not None:
                _explain_failed_start(log.read_text())
            assert time.monotonic() < deadline, f"{argv[0]} did not start:\n{log.read_text()}"
            time.sleep(0.02)

    def stop(self, port: int | None = None) -> None:
        """Stop the server on ``port``, or every server."""
        chosen = [self.processes[port]] if port is not None else list(self.processes.values())
        for process in chosen:
            if process.poll() is None:
                process.terminate()
        for process in chosen:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tls_arguments(certs: Certificates) -> list[str]:
    return [
        *("--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key)),
        *("--tls-ca-cert-file", str(certs.ca)),
    ]


def _explain_failed_start(output: str) -> None:
    # A redis-server built without TLS does not know the tls-* directives at all.
    if "Bad directive" in output and "tls-" in output:
        pytest.skip(f"this redis-server was built without TLS: {output.strip()[-300:]}")
    raise AssertionError(f"redis-server exited:\n{output}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command (to make test certificates) is not installed")
    return _make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    servers = Servers(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    servers = Servers(tmp_path)
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def tls_port(module_servers: Servers, certs: Certificates) -> int:
    """A TLS-only server that does not ask clients for certificates."""
    return module_servers.tls_redis(certs, "--tls-auth-clients", "no")


@pytest.fixture
def prefix() -> str:
    return f"tqtest-{uuid.uuid4().hex[:12]}:"


def _message(body: str) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {}, {"priority": 0})


def _round_trip(broker: RedisTransport, results: RedisBackend) -> None:
    """Publish, fetch and acknowledge a message, broadcast, and store and read a result."""
    subscription = broker.subscribe("events")
    broker.publish(_message("hello"), Queue("q"))
    [delivery] = broker.fetch(["q"], 10, timeout=2)
    assert delivery.message.body == b"hello"
    broker.ack(delivery)
    assert broker.size("q") == 0
    broker.broadcast("events", _message("event"))
    assert [m.body for m in subscription.get(timeout=2)] == [b"event"]
    subscription.close()
    results.set("result", b"value", expires=60)
    assert results.get("result") == b"value"
    results.wait_for_change("result", timeout=2)  # already there: returns at once


# -- TLS -------------------------------------------------------------------------------


def test_transport_and_backend_work_over_tls_with_the_ca_given(
    tls_port: int, certs: Certificates, prefix: str
) -> None:
    url = f"rediss://localhost:{tls_port}/0"
    options = {"ssl_ca_certs": str(certs.ca), "global_keyprefix": prefix}
    broker, results = RedisTransport(url, options), RedisBackend(url, options)
    _round_trip(broker, results)
    broker.close()
    results.close()


def test_default_verification_rejects_a_server_whose_ca_is_not_trusted(tls_port: int) -> None:
    url = f"rediss://localhost:{tls_port}/0"
    broker, results = RedisTransport(url, {}), RedisBackend(url, {})
    with pytest.raises(TransportError, match=r"certificate verif.*ssl_ca_certs"):
        broker.publish(_message("m"), Queue("q"))
    with pytest.raises(BackendError, match=r"certificate verif.*ssl_ca_certs"):
        results.get("result")
    broker.close()
    results.close()


def test_the_hostname_is_checked_unless_ssl_check_hostname_is_false(
    tls_port: int, certs: Certificates, prefix: str
) -> None:
    url = f"rediss://127.0.0.1:{tls_port}/0"  # the certificate names localhost only
    options = {"ssl_ca_certs": str(certs.ca), "global_keyprefix": prefix}
    broker = RedisTransport(url, options)
    with pytest.raises(TransportError, match=r"mismatch.*ssl_check_hostname"):
        broker.size("q")
    broker.close()
    broker = RedisTransport(url, {**options, "ssl_check_hostname": False})
    assert broker.size("q") == 0
    broker.close()


def test_ssl_cert_reqs_none_turns_verification_off(tls_port: int, prefix: str) -> None:
    broker = RedisTransport(
        f"rediss://127.0.0.1:{tls_port}/0", {"ssl_cert_reqs": "none", "global_keyprefix": prefix}
    )
    assert broker.size("q") == 0
    broker.close()


def test_a_server_requiring_client_certificates_accepts_ssl_certfile_and_keyfile(
    servers: Servers, certs: Certificates, prefix: str
) -> None:
    port = servers.tls_redis(certs, "--tls-auth-clients", "yes")
    url = f"rediss://localhost:{port}/0"
    options = {"ssl_ca_certs": str(certs.ca), "global_keyprefix": prefix}
    anonymous = RedisTransport(url, options)
    with pytest.raises(TransportError):
        anonymous.size("q")
    anonymous.close()
    client_options = {
        **options,
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
    }
    broker, results = RedisTransport(url, client_options), RedisBackend(url, client_options)
    _round_trip(broker, results)
    broker.close()
    results.close()


@pytest.mark.e2e
def test_worker_runs_tasks_over_tls(tls_port: int, certs: Certificates, tmp_path: Path) -> None:
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE)
    url = f"rediss://localhost:{tls_port}/0"
    prefix = f"tqtest-{uuid.uuid4().hex[:12]}:"
    options = {"ssl_ca_certs": str(certs.ca), "global_keyprefix": prefix}
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "TQ_BROKER_URL": url,
        "TQ_RESULT_BACKEND": url,
        "TQ_BROKER_TRANSPORT_OPTIONS": json.dumps(options),
        "TQ_RESULT_BACKEND_TRANSPORT_OPTIONS": json.dumps(options),
    }
    worker = WorkerProcess(tmp_path, env, "-P", "threads", "-c", "2")
    try:
        output = run_client(
            tmp_path,
            env,
            """
            from e2e_tasks import record

            results = [record.delay(i) for i in range(5)]
            print([r.get(timeout=30) for r in results])
            """,
            timeout=60,
        )
        assert output.strip() == "[0, 2, 4, 6, 8]"
    finally:
        assert worker.stop() == 0, worker.output


# -- Sentinel --------------------------------------------------------------------------


def _master_address(broker: RedisTransport) -> tuple[str, int]:
    pool = broker.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
    return str(host), int(port)


def _sentinel_options(sentinel_port: int, prefix: str) -> tuple[str, dict[str, object]]:
    return f"sentinel://127.0.0.1:{sentinel_port}/0", {
        "master_name": MASTER,
        "global_keyprefix": prefix,
    }


def test_transport_and_backend_find_the_master_through_sentinel(
    servers: Servers, prefix: str
) -> None:
    master = servers.redis()
    url, options = _sentinel_options(servers.sentinel(master), prefix)
    broker, results = RedisTransport(url, options), RedisBackend(url, options)
    _round_trip(broker, results)
    assert _master_address(broker) == ("127.0.0.1", master)
    broker.close()
    results.close()


def test_a_master_name_no_sentinel_knows_is_a_transport_error_naming_the_option(
    servers: Servers, prefix: str
) -> None:
    url, options = _sentinel_options(servers.sentinel(servers.redis()), prefix)
    broker = RedisTransport(url, {**options, "master_name": "elsewhere"})
    with pytest.raises(TransportError, match=r"elsewhere.*'master_name'"):
        broker.size("q")
    broker.close()


def test_sentinel_and_master_both_over_tls(
    servers: Servers, certs: Certificates, prefix: str
) -> None:
    master = servers.tls_redis(certs, "--tls-auth-clients", "no")
    sentinel = servers.sentinel(master, tls=certs)
    url, options = _sentinel_options(sentinel, prefix)
    # TLS options reach the master; sentinel_kwargs the Sentinels (by IP address, and
    # their certificate names localhost, as does the master's).
    tls = {"ssl_ca_certs": str(certs.ca), "ssl_check_hostname": False}
    to_sentinels = {"sentinel_kwargs": {"ssl": True, **tls}}
    both = {**options, **tls, **to_sentinels}
    broker, results = RedisTransport(url, both), RedisBackend(url, both)
    _round_trip(broker, results)
    assert _master_address(broker) == ("127.0.0.1", master)
    broker.close()
    results.close()
    # The Sentinels answer, but the master's certificate is not trusted by default.
    broker = RedisTransport(url, {**options, **to_sentinels, "ssl_check_hostname": False})
    with pytest.raises(TransportError, match=r"certificate verif.*ssl_ca_certs"):
        broker.size("q")
    broker.close()


def _eventually(call: Callable[[], T], timeout: float = 15) -> T:
    """``call()``, again while it raises a tq error (a call during a failover may)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except TqError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _role(port: int) -> str:
    with redis.Redis(port=port) as client:
        return str(client.execute_command("ROLE")[0], "ascii")


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _synced(replica: int) -> bool:
    with redis.Redis(port=replica) as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def _fail_over(servers: Servers, how: str, sentinel: int, master: int) -> None:
    """End the master's reign: stop its process, or ask the Sentinel to promote the replica."""
    if how == "master stops":
        servers.stop(master)
        return
    with redis.Redis(port=sentinel) as client:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.execute_command("SENTINEL FAILOVER", MASTER)
                return
            except redis.ResponseError:  # NOGOODSLAVE: the replica is not known yet
                assert time.monotonic() < deadline, "the Sentinel never found the replica"
                time.sleep(0.1)


@pytest.mark.parametrize("how", ["master stops", "SENTINEL FAILOVER"])
def test_transport_and_backend_follow_a_failover(servers: Servers, prefix: str, how: str) -> None:
    # No 5-second pause before the replica's first sync.
    master = servers.redis("--repl-diskless-sync-delay", "0")
    replica = servers.redis("--replicaof", "127.0.0.1", str(master))
    _wait_until(lambda: _synced(replica), "the replica is in sync")
    sentinel = servers.sentinel(
        master,
        f"sentinel down-after-milliseconds {MASTER} 1000",
        f"sentinel failover-timeout {MASTER} 10000",
    )
    url, options = _sentinel_options(sentinel, prefix)
    broker, results = RedisTransport(url, options), RedisBackend(url, options)
    for i in range(3):
        broker.publish(_message(f"before {i}"), Queue("q"))
    results.set("result", b"before")
    with redis.Redis(port=master) as raw:
        assert raw.execute_command("WAIT", 1, 5000) == 1  # the replica holds them too

    _fail_over(servers, how, sentinel, master)
    _wait_until(lambda: _role(replica) == "master", "the replica is promoted")
    if how == "SENTINEL FAILOVER":
        # Until then the old master still takes writes (Sentinel's known window).
        # Sentinel demotes it on its next INFO round, up to 10 seconds later.
        _wait_until(lambda: _role(master) == "slave", "the old master follows the new one")

    # The pooled connections lead to the old master, gone or read-only; redis-py asks
    # the Sentinel again and the work goes on against the new master.
    for i in range(3):
        _eventually(partial(broker.publish, _message(f"after {i}"), Queue("q")))
    deliveries = _eventually(lambda: broker.fetch(["q"], 10, timeout=2))
    assert sorted(d.message.body.decode() for d in deliveries) == [
        *(f"after {i}" for i in range(3)),
        *(f"before {i}" for i in range(3)),
    ]
    for delivery in deliveries:
        _eventually(partial(broker.ack, delivery))
    assert _eventually(lambda: results.get("result")) == b"before"
    _eventually(lambda: results.set("result", b"after"))
    assert results.get("result") == b"after"
    assert _master_address(broker) == ("127.0.0.1", replica)
    with redis.Redis(port=replica) as raw:
        assert raw.get(f"{prefix}result") == b"after"
    broker.close()
    results.close()
