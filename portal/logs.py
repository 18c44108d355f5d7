"""Log formatting: one JSON object per line in production, with the request id on every record.

Selected by ``LOG_FORMAT`` in settings. The JSON lines carry a fixed set of fields, never the
record's arbitrary attributes: Django attaches the whole request to some records (``extra``), and
its headers, cookies and query string must not reach the logs.
"""

import json
import logging
from datetime import UTC, datetime

from portal.request_id import current_request_id

# The ``extra`` fields a record may add to its JSON line (the request line's, see portal.middleware).
EXTRA_FIELDS = ("method", "route", "status", "duration_ms")


class RequestIdFilter(logging.Filter):
    """Stamp every record with the id of the request or task it was logged for ("-" outside both)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, known extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for field in EXTRA_FIELDS:
            if (value := getattr(record, field, None)) is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)
