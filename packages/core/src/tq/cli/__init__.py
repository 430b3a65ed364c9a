"""The ``tq`` command line; subcommands come from plugins (``tq_cli_commands``)."""
