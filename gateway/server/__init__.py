"""The running gateway."""

import sys


def _import_structlog_without_its_console() -> None:
    """Import structlog with its development console's rich support left off.

    structlog's package imports its console renderer, and that imports rich (with pygments)
    whenever rich is installed, as it is here for `gateway log summary`. The gateway renders
    JSON only, so that import is 3-5 MiB of every serving process's resident memory (issue 13's
    peak-RSS target) and a tenth of a second of its start, for nothing. A ``None`` entry in
    ``sys.modules`` makes that one import fail as if rich were absent (the import system's
    documented meaning of ``None`` there); structlog then leaves its rich support off, and rich
    imports normally afterwards for the commands that use it.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_its_console()
