"""The id of the request being served (or of the task it caused), for logs, tasks and webhook headers.

The web middleware sets it per request (``portal.middleware``), the Celery signals in
``portal.celery`` carry it into the tasks a request queues, and every log record and webhook
delivery reads it from here. A context variable, so threads and the worker's tasks never see each
other's id.
"""

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
# The Celery message header the id travels in (``task.request.portal_request_id`` on the worker).
TASK_HEADER = "portal_request_id"

# An incoming id is kept only if it looks like an id: short, and nothing a log line could be forged with.
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_accept(incoming: str | None) -> str:
    """The incoming id if it is sane (a proxy's or a caller's), otherwise a new one."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return request_id_new()


def current_request_id() -> str | None:
    """The id of the request or task this code runs for, or ``None`` outside both."""
    return _current.get()


def request_id_bind(value: str | None) -> None:
    """Make ``value`` the current id (``None`` when the request or task is over)."""
    _current.set(value)
