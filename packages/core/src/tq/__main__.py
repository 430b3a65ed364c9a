"""``python -m tq`` is the ``tq`` command."""

from tq.cli.main import main

main()
