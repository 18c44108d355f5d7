"""CSV cells that a spreadsheet will not run as formulas.

Every CSV a person downloads goes through ``csv_cell``: partners and staff supply some of the text
(an access event's detail, a note), and a spreadsheet runs a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return as a formula (OWASP "CSV injection"). It lives in the audit
app, the bottom of the dependency order, so that every app can import it.
"""

import json
from typing import Any

FORMULA_STARTS = frozenset("=+-@\t\r")


def csv_text(value: str) -> str:
    """The text as a spreadsheet shows it literally: a leading ``'`` before anything formula-like."""
    return "'" + value if value and value[0] in FORMULA_STARTS else value


def csv_cell(value: Any) -> Any:
    """One value ready for ``csv.writer``: ``None`` empty, lists and dicts as JSON, text defused."""
    if value is None:
        return ""
    kind = value.__class__
    if kind is str:
        return csv_text(value)
    if kind is dict or kind is list:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return value
