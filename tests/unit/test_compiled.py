"""A compiled build older than its source is found (tests/conftest.py refuses to run on one)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from gateway.compiled import stale_sources

EXTENSION = ".cpython-311-x86_64-linux-gnu.so"


def _touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))
    return path


def test_a_source_edited_after_its_build_is_stale(tmp_path: Path) -> None:
    edited = _touch(tmp_path / "server" / "handler.py", 2000)
    _touch(tmp_path / "server" / f"handler{EXTENSION}", 1000)
    _touch(tmp_path / "core" / "decision.py", 1000)
    _touch(tmp_path / "core" / f"decision{EXTENSION}", 2000)
    _touch(tmp_path / "core" / "tokens.py", 3000)  # never compiled: no extension beside it
    assert stale_sources(tmp_path) == [edited]


def test_a_plain_python_tree_has_nothing_stale(tmp_path: Path) -> None:
    _touch(tmp_path / "server" / "handler.py", 2000)
    assert stale_sources(tmp_path) == []


def test_the_checkout_under_test_is_not_stale() -> None:
    assert stale_sources() == []


def test_the_build_sees_every_runtime_dependency() -> None:
    """setup.py's compiler types the request path from the dependencies in the build
    environment; one missing there would be typed from whatever the installing environment
    holds, so the same source could compile differently (pyproject.toml says why)."""
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    build_requires = project["build-system"]["requires"]
    assert set(project["project"]["dependencies"]) <= set(build_requires)
