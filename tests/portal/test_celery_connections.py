import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from django.db import connection

from portal.celery import _close_old_connections, _load_urlconf, app


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


def test_a_worker_imports_the_urlconf_before_its_pool_starts_and_keeps_no_connection():
    """The pool processes inherit the populated resolver; none of them shares a connection with the parent."""
    from celery.signals import worker_init

    assert any(receiver() is _load_urlconf for _key, receiver in worker_init.receivers)
    script = (
        "import sys, django; django.setup()\n"
        "from django.conf import settings\n"
        "from portal.celery import _load_urlconf\n"
        "assert settings.ROOT_URLCONF not in sys.modules\n"
        "_load_urlconf()\n"
        "from django.db import connections\n"
        "assert settings.ROOT_URLCONF in sys.modules and 'consents.views' in sys.modules\n"
        "assert all(c.connection is None for c in connections.all(initialized_only=True))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]
