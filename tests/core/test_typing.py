"""Task call sites are checked by a type checker: ``delay`` takes the function's parameters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

USER_CODE = textwrap.dedent(
    """
    from tq import App, Task

    app = App("typed", broker="memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True, max_retries=3)
    def shout(self: Task[[str], str], text: str) -> str:
        return text.upper()

    add.delay(1, 2)
    add.delay("one", 2)
    shout.delay("hi")
    shout.delay(3)
    total: int = add.delay(1, 2).get(timeout=1)
    wrong: str = add.delay(1, 2).get(timeout=1)
    """
)


def test_mypy_checks_delay_arguments_and_result_types(tmp_path: Path) -> None:
    source = tmp_path / "user_tasks.py"
    source.write_text(USER_CODE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    lines = sorted(int(line.split(":")[1]) for line in errors)
    assert lines == [15, 17, 19], done.stdout
    assert 'incompatible type "str"; expected "int"' in done.stdout
    assert 'incompatible type "int"; expected "str"' in done.stdout
