"""Which build of the gateway a benchmark runs: compiled (setup.py's mypyc build, beside the
sources) or plain Python, and the compiled build of another checkout made in place."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from gateway.compiled import stale_sources

__all__ = ["build_name", "compile_in_place", "stale_build"]


def build_name(tree: Path) -> str:
    """How ``tree``'s gateway runs when started from it with ``python -m gateway``."""
    compiled = any((tree / "gateway" / "server").glob("handler.*.so"))
    return "compiled (mypyc)" if compiled else "plain Python"


def stale_build(tree: Path) -> str | None:
    """Why ``tree``'s compiled build would not measure its sources, or None."""
    stale = stale_sources(tree / "gateway")
    if not stale:
        return None
    return (f"{len(stale)} compiled modules are older than their sources ({stale[0]}): "
            "rebuild with `.venv/bin/pip install -e .`")  # fmt: skip


def compile_in_place(tree: Path) -> None:
    """Build ``tree``'s wheel as an install would (compiled; a checkout from before setup.py
    had a compiled build is left as it is) and put its extension modules beside the sources,
    where an editable install puts them."""
    if not (tree / "setup.py").exists():
        return
    with tempfile.TemporaryDirectory(prefix="gateway-wheel-") as out:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out,
             str(tree)],
            check=True, env={**os.environ, "GATEWAY_BUILD": "compiled"},
        )  # fmt: skip
        (wheel,) = Path(out).glob("gateway-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.endswith(".so"):
                    archive.extract(member, tree)
