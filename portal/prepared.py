"""One-row reads on hot paths as server-side prepared statements on PostgreSQL.

Django binds parameters on the client (``OPTIONS["server_side_binding"]`` is off) and turns
psycopg's automatic preparation off (``prepare_threshold`` None), so PostgreSQL parses and plans
every statement on every call. For a many-join statement that planning costs more than running it
(token introspection: about 3 ms planning against 0.2-0.7 ms execution). Here the statement is
bound on the server and prepared once per connection (psycopg keeps the name per connection);
after five executions PostgreSQL settles on a generic plan and stops planning altogether.

Prepared statements live in a database session. Behind PgBouncer in transaction pooling mode they
need PgBouncer >= 1.21 with ``max_prepared_statements`` set; with an older pooler (or any that
cannot track them) set ``DATABASE_PREPARED_STATEMENTS=0`` and the same statement runs unprepared.
SQLite and other databases always take the unprepared path.
"""

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of ``sql`` with ``params`` (``%s`` placeholders), prepared on PostgreSQL.

    It goes through Django's cursor wrapper as any query does: the connection is opened as needed,
    database errors surface as Django's (a lost connection is closed and the request answers 503),
    and the statement counts in ``connection.queries`` and query-count assertions.

    On PostgreSQL it also stands in for Django's per-request connection health check, which costs a
    round trip (``SELECT 1``) before the first query of every request: when that check is still due
    and no transaction is open, the statement runs straight away, and if the connection turns out
    to be dead (the server restarted or dropped it since the last request), it is closed and the
    statement runs once more on a new one. A read outside a transaction can safely run twice.
    """
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.validate_thread_sharing()
    check_due = (
        connection.connection is not None
        and connection.health_check_enabled  # type: ignore[attr-defined]
        and not connection.health_check_done  # type: ignore[attr-defined]
        and not connection.in_atomic_block
    )
    if not check_due:
        connection.close_if_health_check_failed()  # Django's own check, where it is still due
    try:
        row = _prepared_fetch_one(sql, params)
    except (InterfaceError, OperationalError):
        if not check_due:
            raise
        logger.info("database connection lost since its last use; reconnecting")
        connection.close()
        row = _prepared_fetch_one(sql, params)
    connection.health_check_done = True  # type: ignore[attr-defined]
    return row


def _prepared_fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns preparing off (None); 0 prepares at first use. Only server-binding cursors
        # ever prepare, and Django's are all client-binding: the ORM's statements stay unprepared.
        raw.prepare_threshold = 0
    # A plain psycopg cursor binds on the server, which preparing needs. It shares the connection,
    # its session and its type adapters.
    # (django-stubs type both wrappers' argument as a wrapper; Django passes the driver's cursor.)
    binding: Any = psycopg.Cursor(raw)
    wrapped = connection.make_debug_cursor(binding) if connection.queries_logged else connection.make_cursor(binding)
    with wrapped as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
