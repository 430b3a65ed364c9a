"""Contract suites every transport, result backend and pool plugin must pass.

Subclass a contract in a test module and provide its fixture (for a pool, its name);
pytest then runs every contract test against your plugin::

    class TestMyTransport(TransportContract):
        @pytest.fixture
        def transport(self, tmp_path: Path) -> Iterator[TransportFactory]:
            with transport_factory(MyTransport, f"my://{tmp_path}/broker") as make:
                yield make

    class TestMyPool(PoolContract):
        pool = "mypool"  # runs real ``tq worker -P mypool`` processes

Importing this package only defines classes: it registers no fixtures or hooks.
"""

from tq_testing.contracts.backend import BackendContract
from tq_testing.contracts.pool import PoolContract
from tq_testing.contracts.transport import (
    TransportContract,
    TransportFactory,
    transport_factory,
)

__all__ = [
    "BackendContract",
    "PoolContract",
    "TransportContract",
    "TransportFactory",
    "transport_factory",
]
