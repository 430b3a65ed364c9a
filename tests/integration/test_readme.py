"""README's first command installs everything the ``tq`` bundle needs, from this checkout.

The command installs local directories only, so pip cannot fetch a bundle dependency
from the index: a package added to the bundle but not to the command breaks it on a
fresh machine (it did once, when ``tq-pool-prefork`` joined the bundle).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pyproject(path: Path) -> str:
    return (path / "pyproject.toml").read_text()


def _name(path: Path) -> str:
    # A regular expression rather than tomllib, which Python 3.10 does not have.
    found = re.search(r'^name\s*=\s*"([^"]+)"', _pyproject(path), re.MULTILINE)
    assert found, f"no project name in {path}/pyproject.toml"
    return found.group(1).lower()


def _dependencies(path: Path) -> list[str]:
    block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", _pyproject(path), re.MULTILINE | re.DOTALL)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_the_first_readme_command_installs_every_tq_package_the_bundle_needs() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    command = next(line for line in lines if "pip install ./packages/" in line)
    installed = {_name(ROOT / path) for path in re.findall(r"\./(packages/[\w-]+)", command)}
    packages = [p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()]
    local = {_name(path) for path in packages}
    bundle = _dependencies(ROOT / "packages" / "tq")
    needed = {name for name in map(_requirement_name, bundle) if name in local}
    assert "tq" in installed
    assert "tq-core" in needed  # the parsing found the bundle's dependencies
    assert needed <= installed, f"README's first command misses {sorted(needed - installed)}"
