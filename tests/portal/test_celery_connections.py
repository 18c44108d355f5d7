import time
from types import SimpleNamespace

import pytest
from django.db import connection

from portal.celery import _close_old_connections, app


def test_celery_fixup_no_longer_closes_the_database_after_every_task():
    assert app.conf.get("CELERY_DB_REUSE_MAX") >= 1_000_000


@pytest.mark.django_db(transaction=True)
def test_worker_keeps_a_healthy_connection_and_drops_an_obsolete_one():
    connection.ensure_connection()
    raw = connection.connection

    _close_old_connections(task=SimpleNamespace(request=SimpleNamespace(is_eager=False)))
    assert connection.connection is raw, "a healthy connection within CONN_MAX_AGE is reused"

    connection.close_at = time.monotonic() - 1
    _close_old_connections(task=None)
    assert connection.connection is None


def test_eager_tasks_leave_the_callers_transaction_alone(db):
    connection.ensure_connection()
    raw = connection.connection

    _close_old_connections(task=SimpleNamespace(request=SimpleNamespace(is_eager=True)))

    assert connection.connection is raw
    assert connection.in_atomic_block
