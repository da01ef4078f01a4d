"""The layers hold (README "Layout"): import-linter's contracts in .importlinter, and the pure core
imports no I/O module of the standard library (asyncio, sqlite3, time, socket...) and no driver."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What makes code impure or slow to test: clocks, sockets, databases, threads, the event loop.
CORE_FORBIDDEN = {"asyncio", "sqlite3", "time", "socket", "threading", "subprocess", "selectors",
                  "drivers", "pymodbus", "asyncua", "pyghmi", "structlog"}


def test_import_linter_contracts_are_kept():
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                             " lint_imports_command()"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_core_imports_no_clock_socket_database_or_driver():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & CORE_FORBIDDEN)
                 for p in sorted((ROOT / "controller" / "core").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_finds_a_forbidden_import(tmp_path):
    # The check above can fail: a module that imports time is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom asyncio import sleep\n")
    assert _imports(bad) & CORE_FORBIDDEN == {"time", "asyncio"}
