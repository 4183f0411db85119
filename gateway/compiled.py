"""Whether the request path runs compiled, and whether a compiled build is older than its source.

setup.py compiles the request path with mypyc where it can; the C extension modules sit beside
their `.py` sources and Python imports them in their place. An editable install builds them in
the source tree, so a source edited after the build is not what runs until the next build.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["request_path_compiled", "stale_sources"]

PACKAGE = Path(__file__).parent


def request_path_compiled() -> bool:
    """True when the door (and with it the rest of the request path) is imported from C."""
    door = importlib.util.find_spec("gateway.server.handler")
    return door is not None and not (door.origin or "").endswith(".py")


def stale_sources(package: Path = PACKAGE) -> list[Path]:
    """The sources edited after the extension module built from them (none for a plain-Python
    install, where there are no extension modules)."""
    stale: list[Path] = []
    for extension in sorted(package.rglob("*.so")):
        source = extension.with_name(extension.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
            stale.append(source)
    return stale
