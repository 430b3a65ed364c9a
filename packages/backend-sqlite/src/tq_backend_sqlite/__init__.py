"""tq's embedded SQLite result backend: :class:`tq_backend_sqlite.backend.SQLiteBackend`."""
