"""The ``tq`` command: plugins, config, call, and finding the app with ``-A``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tq.cli.main import main
from tq.transports.memory import MemoryTransport

TQ = str(Path(sys.executable).with_name("tq"))


@dataclass
class Run:
    code: int
    out: str
    err: str


TqRunner = Callable[..., Run]


@pytest.fixture
def tq(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> TqRunner:
    """Run the ``tq`` console entry point in this process and capture what it prints."""
    monkeypatch.delenv("TQ_APP", raising=False)
    monkeypatch.delenv("TQ_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding app modules with names unique to this test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write_app_module(directory: Path, body: str) -> str:
    name = f"tq_cli_app_{uuid.uuid4().hex[:12]}"
    (directory / f"{name}.py").write_text(body)
    return name


def test_plugins_lists_the_core_plugin_with_its_components(tq: TqRunner) -> None:
    run = tq("-b", "memory://cli-plugins", "plugins")
    assert run.code == 0
    assert "core  (tq-core " in run.out
    for provided in (
        "serializer:json",
        "serializer:pickle",
        "compressor:zlib",
        "compressor:lzma",
        "transport:memory",
        "backend:memory",
    ):
        assert f"    {provided}" in run.out


def test_config_censors_the_broker_password(tq: TqRunner) -> None:
    run = tq("-b", "redis://user:topsecret@broker.example:6379/0", "config")
    assert run.code == 0
    assert "topsecret" not in run.out
    assert "broker_url: 'redis://user:**@broker.example:6379/0'" in run.out


def test_config_all_includes_defaults(tq: TqRunner) -> None:
    run = tq("-b", "memory://cli-config", "config", "--all")
    assert "task_default_queue: 'tq'" in run.out


def test_call_sends_the_task_and_prints_its_id(tq: TqRunner) -> None:
    url = f"memory://{uuid.uuid4().hex}"
    run = tq("-b", url, "call", "proj.add", "--args", "[1, 2]", "--kwargs", '{"z": 3}')
    assert run.code == 0
    task_id = run.out.strip()
    uuid.UUID(task_id)
    (delivery,) = MemoryTransport(url).fetch(["tq"], 1, 0)
    assert delivery.message.headers["id"] == task_id
    assert delivery.message.headers["task"] == "proj.add"


def test_call_with_bad_json_is_a_one_line_error_without_traceback(tq: TqRunner) -> None:
    run = tq("-b", "memory://cli-bad", "call", "proj.add", "--args", "[1,")
    assert run.code != 0
    assert "Traceback" not in run.err
    error_lines = [line for line in run.err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "--args" in error_lines[0] and "not valid JSON" in error_lines[0]


def test_call_with_args_that_are_not_a_list_is_an_error(tq: TqRunner) -> None:
    run = tq("-b", "memory://cli-bad", "call", "proj.add", "--args", '{"a": 1}')
    assert run.code != 0
    assert "must be a JSON list" in run.err


def test_call_to_a_missing_transport_names_the_package(tq: TqRunner) -> None:
    run = tq("-b", "sqs://", "call", "proj.add")
    assert run.code == 1
    assert run.err.strip() == (
        "Error: No transport for 'sqs://'. Install it with: pip install \"tq[sqs]\""
    )


def test_app_option_loads_a_module_with_an_app(tq: TqRunner, app_dir: Path) -> None:
    module = _write_app_module(
        app_dir,
        (
            "from tq import App\n"
            "app = App('proj', broker='memory://cli-a-module', task_default_queue='from-module')\n"
        ),
    )
    run = tq("-A", module, "config")
    assert run.code == 0, run.err
    assert "task_default_queue: 'from-module'" in run.out


def test_app_option_loads_module_colon_attribute(tq: TqRunner, app_dir: Path) -> None:
    module = _write_app_module(
        app_dir,
        (
            "from tq import App\n"
            "first = App('one', broker='memory://cli-one', task_default_queue='one')\n"
            "second = App('two', broker='memory://cli-two', task_default_queue='two')\n"
        ),
    )
    run = tq("-A", f"{module}:second", "config")
    assert run.code == 0, run.err
    assert "task_default_queue: 'two'" in run.out


def test_app_option_naming_something_that_is_not_an_app_is_an_error(
    tq: TqRunner, app_dir: Path
) -> None:
    module = _write_app_module(app_dir, "value = 42\n")
    run = tq("-A", f"{module}:value", "config")
    assert run.code == 1
    assert run.err.strip() == f"Error: '{module}:value' is not a tq.App (got int)"


def test_app_option_with_a_module_without_an_app_is_a_one_line_error(
    tq: TqRunner, app_dir: Path
) -> None:
    module = _write_app_module(app_dir, "x = 1\n")
    run = tq("-A", module, "config")
    assert run.code == 1
    assert len(run.err.strip().splitlines()) == 1
    assert f"Module {module!r} has no tq.App" in run.err


def test_app_option_with_a_missing_module_is_a_one_line_error(tq: TqRunner, app_dir: Path) -> None:
    run = tq("-A", "no_such_tq_app_module", "config")
    assert run.code == 1
    assert len(run.err.strip().splitlines()) == 1
    assert "Cannot find the app module 'no_such_tq_app_module'" in run.err


def test_an_unknown_command_is_a_usage_error(tq: TqRunner) -> None:
    run = tq("frobnicate")
    assert run.code == 2
    assert "No such command 'frobnicate'" in run.err


def test_the_console_script_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    completed = subprocess.run(
        [TQ, "-b", "memory://cli-subprocess", "call", "proj.add", "--args", "not json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert "not valid JSON" in completed.stderr
