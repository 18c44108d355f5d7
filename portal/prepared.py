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

from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

_NEVER_AUTOMATICALLY = 2**31


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of ``sql`` with ``params`` (``%s`` placeholders), prepared on PostgreSQL.

    The connection is opened and health-checked as for any query, and database errors surface as
    Django's (so a lost connection is closed and the request answers 503 as elsewhere). The
    statement does not appear in ``connection.queries``.
    """
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
            cursor.execute(sql, params)
            return cursor.fetchone()
        connection.validate_no_broken_transaction()
        raw = connection.connection
        if raw.prepare_threshold is None:
            # Django turns preparing off (None), which psycopg applies to ``prepare=True`` too. Only
            # server-binding cursors ever prepare, and Django's are all client-binding: the ORM's
            # statements stay unprepared whatever the threshold.
            raw.prepare_threshold = _NEVER_AUTOMATICALLY
        # A plain psycopg cursor binds on the server, which preparing needs; Django's own binds on
        # the client. It shares the connection, its session and its type adapters.
        with connection.wrap_database_errors, psycopg.Cursor(raw) as prepared:
            prepared.execute(sql, params, prepare=True)
            return prepared.fetchone()
