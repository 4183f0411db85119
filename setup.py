"""The build: the project is described in pyproject.toml; this adds the request path compiled to C.

The modules in `COMPILED` run for every request. mypyc compiles them (from the same typed source
that mypy checks) into C extension modules that sit beside the `.py` files and are imported in
their place: about a quarter fewer instructions per request (`bench/cost.py`; see the README's
Performance section). Where there is no C compiler or no Python headers (or with
GATEWAY_BUILD=pure), the package installs as plain Python: the same behaviour, slower.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent

# The request path: the decision, the rate limits, the door, the upstream client, the access
# line and the metrics. Not the configuration, the tools or start-up: they run once. Nor the
# exceptions the decision raises (`gateway/core/errors.py`): their subclasses override
# class-level defaults, which mypyc's native classes do not keep. Nor `upstream_sink.py`: its
# few lines a piece gain little, and a test injects a failure through it (a compiled class
# cannot be subclassed from Python).
COMPILED = [
    *(
        f"gateway/core/{name}.py"
        for name in (
            "authenticator",
            "bearer",
            "cache",
            "clientip",
            "decision",
            "headers",
            "keep",
            "methods",
            "models",
            "outcomes",
            "params",
            "protocol",
            "ratelimit",
            "refusals",
            "routes",
            "target",
            "urls",
        )
    ),
    *(
        f"gateway/server/{name}.py"
        for name in (
            "access",
            "drain",
            "handler",
            "hot_metrics",
            "logs",
            "ratelimit",
            "requests",
            "upstream",
            "upstream_conn",
            "upstream_pool",
            "wire",
        )
    ),
]


def _why_not_compiled() -> str | None:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(shlex.split(compiler)[0]) is None:
        return f"no C compiler ({compiler})"
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not headers.exists():
        return f"no Python headers ({headers})"
    return None


def extensions() -> list[Extension]:
    """The compiled modules, as GATEWAY_BUILD asks: `auto` (the default) compiles where it can
    and says on stderr why not where it cannot, `compiled` fails the install where it cannot
    (the container image and CI), `pure` does not compile."""
    build = os.environ.get("GATEWAY_BUILD") or "auto"
    if build not in ("auto", "compiled", "pure"):
        sys.exit(f"GATEWAY_BUILD={build!r}: expected auto, compiled or pure")
    if build == "pure":
        return []
    why_not = _why_not_compiled()
    if why_not is not None:
        if build == "compiled":
            sys.exit(f"GATEWAY_BUILD=compiled, but the request path cannot be compiled: {why_not}")
        print(f"gateway: installing as plain Python, not compiled: {why_not}", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    # Types were checked by mypy with the project's strict settings (CI); here mypy only gives
    # mypyc the types, from the runtime dependencies that pyproject.toml's build requirements
    # put in the build environment. Its own cache: one from the project's mypy runs would
    # stand in for what this build must see for itself.
    return mypycify(
        ["--config-file=", "--cache-dir=build/mypyc-cache", *COMPILED],
        opt_level="3",
        group_name="gateway",
    )


setup(ext_modules=extensions())
