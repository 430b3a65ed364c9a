"""tq's pytest plugin: fixtures for users' tests and contract suites for plugin authors."""
