"""tests/CORPUS.md stays true: every file, test and function its tables name exists."""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "CORPUS.md"
PREFIXES = {"F/": "tests/functional/", "U/": "tests/unit/"}

_SPAN = re.compile(r"`([^`]+)`")
_REFERENCE = re.compile(
    r"(?P<path>(?:[FU]/|tests/|gateway/)[\w/]+\.py)?(?:::(?P<name>[\w*]+))?(?P<case>\[[^\]]+\])?"
)


@dataclass(frozen=True)
class Reference:
    """One file or function named in a table cell, with ``::`` continuations resolved."""

    row: str
    path: str | None
    name: str | None


def cell_references(row: str, cell: str) -> list[Reference]:
    """The references in one cell: ``::name`` is in the file named before it in the cell, and a
    bare ``[case]`` names a case of the test before it (cases are not checked here)."""
    found: list[Reference] = []
    path: str | None = None
    for span in _SPAN.findall(cell):
        match = _REFERENCE.fullmatch(span)
        if match is None or not (match["path"] or match["name"]):
            continue  # prose in backticks, or a bare [case]
        if match["path"]:
            prefix = match["path"][:2]
            path = PREFIXES[prefix] + match["path"][2:] if prefix in PREFIXES else match["path"]
        found.append(Reference(row, path, match["name"]))
    return found


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every table body row (header and separator rows left out)."""
    rows: list[list[str]] = []
    for line in markdown.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in {"row", "test"}:
            continue  # a table's header
        rows.append(cells)
    return rows


@cache
def _definitions(path: Path) -> frozenset[str]:
    """The names of a module's top-level functions and classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in tree.body if isinstance(node, kinds))


def problem(reference: Reference) -> str | None:
    """What is wrong with a reference, or None."""
    if reference.path is None:
        return f"{reference.row}: ::{reference.name} has no file before it in its cell"
    path = REPO / reference.path
    if not path.is_file():
        return f"{reference.row}: {reference.path} does not exist"
    if reference.name is not None and not fnmatch.filter(_definitions(path), reference.name):
        return f"{reference.row}: {reference.path} defines no {reference.name}"
    return None


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        pytest.param(
            "`F/server/test_a.py::test_b[x]`, `[y]`",
            [("tests/functional/server/test_a.py", "test_b")],
            id="case-continuation",
        ),
        pytest.param(
            "`U/core/test_a.py::test_b`, `::test_c`<br>`tests/raw.py::helper`",
            [
                ("tests/unit/core/test_a.py", "test_b"),
                ("tests/unit/core/test_a.py", "test_c"),
                ("tests/raw.py", "helper"),
            ],
            id="name-continuation",
        ),
        pytest.param(
            "`F/server/test_a.py::test_*[enc]` and `gateway/core/x.py::f`",
            [("tests/functional/server/test_a.py", "test_*"), ("gateway/core/x.py", "f")],
            id="glob-and-product-code",
        ),
        pytest.param("`gateway/server/logs.py`", [("gateway/server/logs.py", None)], id="file"),
        pytest.param("`::test_b`", [(None, "test_b")], id="dangling-continuation"),
        pytest.param("`auth.reason=missing`, `Content-Length: 04`, `[x]`", [], id="prose"),
    ],
)
def test_cell_references_resolve_continuations(
    cell: str, expected: list[tuple[str | None, str | None]]
) -> None:
    """A cell's references resolve ``::name`` against the file before it and skip prose."""
    assert [(ref.path, ref.name) for ref in cell_references("R", cell)] == expected


def test_every_row_names_a_test() -> None:
    """Each corpus row's tests column names at least one file and test."""
    rows = table_rows(CORPUS.read_text(encoding="utf-8"))
    assert len(rows) > 50
    for cells in rows:
        references = cell_references(cells[0], cells[0] + " " + cells[1])
        assert any(ref.name for ref in references), cells[0]


def test_every_referenced_file_and_function_exists() -> None:
    """Every file, test or function CORPUS.md names (tests and notes alike) exists."""
    references = [
        reference
        for cells in table_rows(CORPUS.read_text(encoding="utf-8"))
        for cell in cells
        for reference in cell_references(cells[0], cell)
    ]
    problems = [text for reference in references if (text := problem(reference)) is not None]
    assert problems == []
