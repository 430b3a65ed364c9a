"""Transports built into the core; the heavy ones live in ``tq-transport-*`` packages."""
