"""The partner API's JSON parser: DRF's, refusing nesting no request of this API needs."""

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# The deepest legitimate body (an access-event batch) nests four levels; 64 leaves room for any
# future shape while keeping validation and error reporting away from pathological inputs.
MAX_JSON_DEPTH = 64


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` levels deep (no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class DepthLimitedJSONParser(JSONParser):
    """JSON bodies nested at most ``MAX_JSON_DEPTH`` levels; deeper ones are a 400 ``parse_error``.

    Python's parser gives up with ``RecursionError`` (a 500) somewhere past a thousand levels;
    that is caught here too. The body size is bounded before parsing by Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, since DRF reads JSON through ``request.body``.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = _too_deep(data, MAX_JSON_DEPTH)
        if too_deep:
            raise ParseError(_("The JSON body is nested more than %(max)d levels deep.") % {"max": MAX_JSON_DEPTH})
        return data
