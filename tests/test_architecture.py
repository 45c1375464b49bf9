"""The package's shape, checked: no import circle, no core package that depends on a family or reads the model
from the data module, and docs/architecture.md naming every package and family there is."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "dawe_merge"
FAMILIES = sorted(p.name for p in (PACKAGE / "families").iterdir() if (p / "__init__.py").is_file())
CORE = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "families")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> list[str]:
    """Module-level imports, those under `if TYPE_CHECKING:` and `try:` included (a circle for a type checker too)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, (ast.If, ast.Try)):
            todo += [*node.body, *node.orelse, *[n for h in getattr(node, "handlers", []) for n in h.body]]
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = {d for d in _imports(ast.parse(path.read_text())) if d in modules}
        graph[name] = deps - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_the_circle_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_core_module_imports_a_family():
    assert {"methods", "models", "merging", "reports", "modelpool", "taskpool", "export"} <= set(CORE)
    for package in CORE:
        for path in (PACKAGE / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                bad = [n for n in names if n.startswith("dawe_merge.families")]
                assert not bad, f"{path.relative_to(ROOT)} imports {bad}: core modules must not depend on a family"


def test_the_data_module_never_reads_the_model():
    """The model tells the TaskPool what it needs (`TaskPool.serve`); the TaskPool reads nothing of the model."""
    for path in [*(PACKAGE / "taskpool").rglob("*.py"), *PACKAGE.glob("families/*/taskpool.py")]:
        text = path.read_text()
        assert "lightning_module" not in text and "dawe_merge.methods" not in text, f"{path.relative_to(ROOT)} reads the model"


def test_architecture_doc_names_every_package_and_family():
    doc = (ROOT / "docs/architecture.md").read_text()
    layout = doc.split("```")[1]  # the layout block
    missing = [f"{p}/" for p in CORE if f"  {p}/" not in layout] + [f"families/{f}/" for f in FAMILIES if f"families/{f}/" not in layout]
    assert not missing, f"docs/architecture.md's layout does not name {missing}"
    count = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight"][len(FAMILIES)]
    assert f"The {count} families" in doc, f"docs/architecture.md should say how many families there are ({count})"
