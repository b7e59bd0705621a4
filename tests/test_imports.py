"""The package's import structure (docs/architecture.md, "Dependencies point inwards"): `kit/` knows
no domain, no module-level import cycle exists, and the application context imports no job module
(the old cycle: context → jobs_registry → privacy.erasure → context); building a context loads none.

Imports are read from the source, every `import` at any depth, so a lazy import inside a function
counts too; `if TYPE_CHECKING:` blocks are skipped, since they never run.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import huirongke

PACKAGE = Path(huirongke.__file__).parent
KIT_MAY_IMPORT = ("huirongke.kit", "huirongke.config")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts}


def imports(source: str, name: str, *, is_package: bool = False, top_level_only: bool = False) -> set[str]:
    """Every module named by an import in the module `name` (for `from a import b`: `a`, and `a.b` in
    case b is a module). With `top_level_only`, only the imports that run when it is imported."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package[: len(package) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                visit(getattr(node, field, None) or [])

    visit(ast.parse(source).body)
    return found


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    return imports(
        path.read_text(encoding="utf-8"),
        module_name(path),
        is_package=path.name == "__init__.py",
        top_level_only=top_level_only,
    )


def graph(*, top_level_only: bool) -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(p, top_level_only=top_level_only) & mods.keys() for m, p in mods.items()}


def test_kit_imports_nothing_from_the_domains():
    offenders = [
        f"{name} imports {imported}"
        for name, path in modules().items()
        if name.startswith("huirongke.kit")
        for imported in sorted(imports_of(path))
        if imported.startswith("huirongke") and not imported.startswith(KIT_MAY_IMPORT)
    ]
    assert offenders == []


def test_the_import_reader_sees_lazy_relative_and_guarded_imports():
    # The shape of the old kit/sms/dev_routes.py: a lazy import and a relative one must both count.
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from huirongke.context import AppContext\n"
        "def f():\n    from huirongke.accounts.deps import DB\n"
        "from ...privacy import datamap\n"
    )
    found = imports(source, "huirongke.kit.sms.probe")
    assert {"huirongke.accounts.deps", "huirongke.privacy", "huirongke.privacy.datamap"} <= found
    assert "huirongke.context" not in found  # a TYPE_CHECKING import never runs
    assert "huirongke.accounts.deps" not in imports(source, "huirongke.kit.sms.probe", top_level_only=True)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_level_import_cycle():
    assert cycles(graph(top_level_only=True)) == []


def job_modules() -> set[str]:
    """The modules that register a background job (`@job(...)`), and the registry importing them."""
    registers = re.compile(r"^@job\(", re.MULTILINE)
    return {m for m, p in modules().items() if registers.search(p.read_text(encoding="utf-8"))} | {
        "huirongke.jobs_registry"
    }


def test_the_context_imports_no_job_module():
    # Job modules import the context; the context importing them back, even lazily inside
    # build_context, was the cycle. The composition roots (app, CLI worker) import them instead.
    found = imports_of(PACKAGE / "context.py") & job_modules()
    assert found == set()
    assert {"huirongke.privacy.erasure", "huirongke.privacy.export"} <= job_modules()


def test_nothing_the_context_reaches_imports_the_context():
    # Lazy imports included: a module the context needs at run time must not need the context back.
    edges = graph(top_level_only=False)
    reached, todo = set(), ["huirongke.context"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges[module])
    assert sorted(m for m in reached - {"huirongke.context"} if "huirongke.context" in edges[m]) == []


def test_cycle_finder_finds_the_old_jobs_registry_cycle():
    old = {
        "huirongke.context": {"huirongke.jobs_registry"},
        "huirongke.jobs_registry": {"huirongke.privacy.erasure"},
        "huirongke.privacy.erasure": {"huirongke.context"},
    }
    assert cycles(old) == [sorted(old)]


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_building_a_context_loads_no_job_module(tmp_path):
    # In a fresh interpreter: the context alone stays clear of the job modules, and the composition
    # root (the app) registers every job; importing a job module first works as well.
    code = f"""
import sys
from huirongke.config import Settings
from huirongke.context import build_context
ctx = build_context(Settings(env="test", data_dir={str(tmp_path)!r}))
loaded = sorted(m for m in ("huirongke.jobs_registry", "huirongke.privacy.erasure") if m in sys.modules)
assert loaded == [], loaded
import huirongke.app
from huirongke.kit.jobs import _REGISTRY
assert {{"privacy.erase", "privacy.erase_due", "privacy.export", "privacy.retention"}} <= set(_REGISTRY)
ctx.jobs.enqueue("privacy.export", "no-such-export")  # a queue built before the import binds it late
assert ctx.jobs.pending() == 1
ctx.db.dispose()
"""
    result = run_fresh(code)
    assert result.returncode == 0, result.stderr
    for first in ("huirongke.jobs_registry", "huirongke.privacy.erasure", "huirongke.context"):
        result = run_fresh(f"import {first}, huirongke.app")
        assert result.returncode == 0, (first, result.stderr)
