import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.conftest import ROOT

APP = ROOT / "consents"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    """The consents modules a module imports anywhere in its body, functions included."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found


def test_consents_modules_do_not_import_each_other_in_a_cycle():
    paths = {_module_name(path): path for path in APP.rglob("*.py") if "migrations" not in path.parts}
    graph = {name: _imports(ast.parse(path.read_text()), set(paths)) - {name} for name, path in paths.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_service_selector_and_task_packages_re_export_nothing():
    for package in ("services", "selectors", "tasks"):
        tree = ast.parse((APP / package / "__init__.py").read_text())
        assert all(isinstance(node, ast.Expr) for node in tree.body), f"consents/{package}/__init__.py has code"
