"""No test file imports another test file: shared helpers and fixtures live in helper modules
(tests/modbus_harness.py, api_harness.py, metrics_plant.py, runtime_fakes.py, plant_harness.py, ...).
Importing a test file ties one file's tests to the other's internals, runs the other's module-level
set-up, and hides fixtures behind an import."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [n for n in names if n.split(".")[-1].startswith("test_")
                  and n.split(".")[0] in ("tests", n.split(".")[-1])]
    return found


def test_the_checker_sees_both_spellings(tmp_path):
    f = tmp_path / "test_x.py"
    f.write_text("from tests.test_a import x\nimport test_b\nfrom tests.modbus_harness import rig\n")
    assert imported_test_modules(f) == ["tests.test_a", "test_b"]


def test_no_test_file_imports_another():
    offenders = {p.name: mods for p in sorted(TESTS.rglob("*.py"))
                 if (mods := imported_test_modules(p))}
    assert offenders == {}
