"""Result backends built into the core; the others live in ``tq-backend-*`` packages."""
