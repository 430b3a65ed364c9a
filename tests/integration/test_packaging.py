"""The distributions build, install from wheels, and bring exactly what they promise.

Builds a wheel for every package under ``packages/`` once per module, then installs
them into fresh virtual environments the way a user would (third-party dependencies
come from the package index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
BUNDLED = {"tq", "tq-core", "tq-worker", "tq-transport-sqlite", "tq-backend-sqlite"}
NOT_BUNDLED = {"redis", "boto3", "pymongo", "cassandra-driver", "kombu"}


def _clean_env() -> dict[str, str]:
    # The venv under test must see only what was installed into it.
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TQ_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    return env


def _bin(venv_dir: Path, name: str) -> Path:
    return venv_dir / ("Scripts" if sys.platform == "win32" else "bin") / name


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _checked(*args: str | Path) -> str:
    result = _run(*args)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _make_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path


def _install(venv_dir: Path, wheels: Path, requirement: str) -> None:
    _checked(
        _bin(venv_dir, "python"),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--find-links",
        wheels,
        requirement,
    )


def _installed(venv_dir: Path) -> set[str]:
    out = _checked(_bin(venv_dir, "python"), "-m", "pip", "list", "--format=json")
    return {entry["name"].lower().replace("_", "-") for entry in json.loads(out)}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding one freshly built wheel per package under packages/."""
    out = tmp_path_factory.mktemp("wheels")
    builder = _make_venv(tmp_path_factory.mktemp("builder"))
    _checked(
        _bin(builder, "python"),
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        out,
        *PACKAGES,
    )
    assert len(list(out.glob("*.whl"))) == len(PACKAGES)
    return out


@pytest.fixture(scope="module")
def bundle_venv(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv where only ``pip install tq`` ran."""
    venv_dir = _make_venv(tmp_path_factory.mktemp("bundle") / "venv")
    _install(venv_dir, wheels, "tq")
    return venv_dir


def test_installing_tq_brings_the_core_worker_and_embedded_sqlite_plugins(
    bundle_venv: Path,
) -> None:
    installed = _installed(bundle_venv)

    assert installed >= BUNDLED
    assert installed.isdisjoint(NOT_BUNDLED), installed & NOT_BUNDLED


def test_tq_plugins_lists_every_bundled_plugin(bundle_venv: Path, tmp_path: Path) -> None:
    result = _run(_bin(bundle_venv, "tq"), "plugins", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    for distribution in BUNDLED - {"tq"}:
        assert distribution in result.stdout


def test_tq_worker_without_tq_worker_installed_names_the_package_to_install(
    wheels: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    venv_dir = _make_venv(tmp_path_factory.mktemp("core-only") / "venv")
    _install(venv_dir, wheels, "tq-core")

    result = _run(_bin(venv_dir, "tq"), "worker", cwd=venv_dir.parent)

    assert result.returncode != 0
    assert "tq-worker" in result.stdout + result.stderr
