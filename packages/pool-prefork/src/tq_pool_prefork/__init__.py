"""tq's prefork pool: tasks run in child processes forked from the worker."""
