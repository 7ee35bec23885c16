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


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_entry_points_reach_storage_only_through_use_cases() -> None:
    # api/, ui/ (its page scripts too) and cli/ translate input and output: no table, session or blob.
    storage = ("core.db", "core.blobs")
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            module for module in _imported_modules(path) if module.startswith(storage)
        )
        + (["session_scope"] if "session_scope" in path.read_text() else [])
        for layer in ("api", "ui", "cli")
        for path in (ROOT / layer).rglob("*.py")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_no_import_cycles() -> None:
    import grimp

    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("core", "api", "workers", "ui", "cli")
    finally:
        sys.path.remove(str(ROOT))
    modules = sorted(graph.modules)
    imports = {
        module: sorted(set(graph.find_modules_directly_imported_by(module)) & set(modules))
        for module in modules
    }
    assert _cycles(imports) == []


def _cycles(imports: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in imports:
        if root in index:
            continue
        work = [(root, iter(imports[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(imports[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_api_process_does_not_carry_scikit_learn() -> None:
    """The API serves requests and hands classification and training to the worker process; with
    scikit-learn (and the pandas it pulls in) imported it would hold ~130 MB it never uses."""
    heavy = "('sklearn', 'pandas', 'torch')"
    probe = f"import sys, api.app; print(','.join(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
