"""Contract suites every transport and result backend plugin must pass.

Subclass a contract in a test module and provide its fixture; pytest then runs every
contract test against your plugin::

    class TestMyTransport(TransportContract):
        @pytest.fixture
        def transport(self, tmp_path: Path) -> Iterator[TransportFactory]:
            with transport_factory(MyTransport, f"my://{tmp_path}/broker") as make:
                yield make

Importing this package only defines classes: it registers no fixtures or hooks.
"""

from tq_testing.contracts.backend import BackendContract
from tq_testing.contracts.transport import (
    TransportContract,
    TransportFactory,
    transport_factory,
)

__all__ = ["BackendContract", "TransportContract", "TransportFactory", "transport_factory"]
