"""tq's embedded SQLite broker: :class:`tq_transport_sqlite.transport.SQLiteTransport`."""
