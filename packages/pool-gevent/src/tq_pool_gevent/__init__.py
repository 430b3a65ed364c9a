"""tq's gevent pool: tasks run in green threads."""
