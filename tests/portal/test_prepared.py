"""Hot-path reads as prepared statements, and the connection check they stand in for (PostgreSQL)."""

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from portal.prepared import fetch_one

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")


@pytest.fixture
def check_due(transactional_db):
    """A live connection at the start of a request: Django's health check not yet done."""
    connection.ensure_connection()
    connection.health_check_done = False
    return connection


def _count_round_trips(monkeypatch) -> list[str]:
    checks: list[str] = []
    real = connection.is_usable

    def is_usable() -> bool:
        checks.append("SELECT 1")
        return real()

    monkeypatch.setattr(connection, "is_usable", is_usable)
    return checks


def test_the_read_itself_checks_the_connection_no_select_1_first(check_due, monkeypatch):
    checks = _count_round_trips(monkeypatch)

    assert fetch_one("SELECT %s::int + 1", [41]) == (42,)

    assert checks == []
    assert connection.health_check_done, "later queries of the request skip Django's check too"


def test_a_connection_the_server_dropped_is_replaced_and_the_read_answers(check_due):
    dropped = connection.connection.info.backend_pid
    with psycopg.connect(connection.connection.info.dsn, password=connection.settings_dict["PASSWORD"]) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dropped])

    assert fetch_one("SELECT %s::int + 1", [1]) == (2,)

    assert connection.connection.info.backend_pid != dropped
    assert connection.health_check_done


def test_inside_a_transaction_a_dropped_connection_is_an_error_not_a_silent_retry(transactional_db):
    with transaction.atomic():
        fetch_one("SELECT 1", [])
        dropped = connection.connection.info.backend_pid
        with psycopg.connect(connection.connection.info.dsn, password=connection.settings_dict["PASSWORD"]) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [dropped])
        with pytest.raises(OperationalError):
            fetch_one("SELECT 1", [])
        transaction.set_rollback(True)
    connection.close()
