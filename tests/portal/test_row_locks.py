"""Row locks only mean something inside a transaction.

SQLite ignores ``select_for_update``, so a public service that locks rows without ``transaction.atomic``
passes every SQLite test and fails on PostgreSQL with ``TransactionManagementError``. This test reads the
source: each public function that locks must be atomic itself (decorator or ``with`` block) or refuse to
run outside its caller's transaction (a check of ``in_atomic_block``); private helpers (leading
underscore) are called from atomic services and are checked through them.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "consents", "audit", "privacy_requests")


def _mentions_atomic(node: ast.AST) -> bool:
    return "atomic" in ast.unparse(node)


def _unguarded_locks(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or function.name.startswith("_"):
            continue
        locks = any(isinstance(node, ast.Attribute) and node.attr == "select_for_update" for node in ast.walk(function))
        if not locks:
            continue
        guarded = (
            any(_mentions_atomic(decorator) for decorator in function.decorator_list)
            or any(isinstance(node, ast.With) and _mentions_atomic(node) for node in ast.walk(function))
            # Or it refuses to run outside the caller's transaction (``if not ...in_atomic_block: raise``).
            or any(isinstance(node, ast.Attribute) and node.attr == "in_atomic_block" for node in ast.walk(function))
        )
        if not guarded:
            found.append(f"{path.relative_to(ROOT)}:{function.lineno} {function.name}")
    return found


def _sources() -> list[Path]:
    paths = (path for app in APPS for path in (ROOT / app).rglob("*.py"))
    return sorted(
        path
        for path in paths
        if "migrations" not in path.relative_to(ROOT).parts and "select_for_update" in path.read_text()
    )


def test_the_source_scan_sees_the_services() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in _sources()}
    assert {"portal/services.py", "consents/services/consents.py", "privacy_requests/services/requests.py"} <= names


@pytest.mark.parametrize("path", _sources(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_public_functions_that_lock_rows_run_in_a_transaction(path: Path) -> None:
    assert _unguarded_locks(path) == []
