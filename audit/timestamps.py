"""How instants are written for partners: ISO 8601 in UTC with a ``Z`` (webhooks, feed and API alike)."""

from datetime import UTC, date, datetime


def iso_utc(value: datetime | date | None) -> str | None:
    """``2026-05-01T12:00:00Z`` for an aware datetime, ``2026-05-01`` for a date, ``None`` for ``None``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
    return value.isoformat()
