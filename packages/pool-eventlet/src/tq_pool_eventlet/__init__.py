"""tq's eventlet pool: tasks run in green threads."""
