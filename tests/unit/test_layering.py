"""Arrows point inward: core imports nothing from the outer layers or their frameworks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTER = {"api", "workers", "ui", "cli", "litestar", "streamlit", "dramatiq", "uvicorn"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_outer_layers_even_lazily() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & OUTER)
        for path in (ROOT / "core").rglob("*.py")
        if _imported_roots(path) & OUTER
    }
    assert offenders == {}


def test_core_never_reads_the_environment_outside_settings() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "core").rglob("*.py")
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    ]
    assert readers == []


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
