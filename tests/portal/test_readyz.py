"""``/readyz``: ready only when the database answers, the broker takes messages and every migration is applied."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from portal.celery import app as celery_app
from tests.conftest import ROOT

READY = {"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}}


@pytest.fixture
def broker_conf() -> Iterator[None]:
    """Lets a test point the Celery app at another broker; the configured one comes back afterwards."""
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    yield
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved


def test_readyz_is_ok_for_anyone_without_login_and_is_not_rate_limited(client, db):
    for _ in range(20):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == READY
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_only_answers_get(client, db):
    assert client.post("/readyz").status_code == 405


def test_readyz_is_503_when_the_broker_port_is_closed(client, db, broker_conf):
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "error", "migrations": "ok"},
    }
    assert b"127.0.0.1" not in response.content


def test_readyz_accepts_a_writable_filesystem_broker_folder(client, db, broker_conf, tmp_path):
    celery_app.conf.broker_url = "filesystem://"
    celery_app.conf.broker_transport_options = {"data_folder_in": str(tmp_path)}
    assert client.get("/readyz").json() == READY
    assert list(tmp_path.iterdir()) == [], "the probe leaves nothing behind"


def test_readyz_is_503_when_the_filesystem_broker_folder_is_gone(client, db, broker_conf, tmp_path):
    celery_app.conf.broker_url = "filesystem://"
    celery_app.conf.broker_transport_options = {"data_folder_in": str(tmp_path / "removed")}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "error", "migrations": "ok"}
    assert str(tmp_path).encode() not in response.content


def test_readyz_is_503_while_a_migration_is_not_applied(client, db):
    # The test's transaction rolls the record back; the executor sees exactly what a deployment
    # that has not run ``migrate`` yet would show.
    (leaf,) = [node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "privacy_requests"]
    MigrationRecorder(connection).record_unapplied(*leaf)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "migrations": "error"}


def test_readyz_is_503_when_the_database_is_unreachable():
    # A process of its own whose database is a closed port: nothing in this test run is disturbed.
    probe = (
        "import django, json; django.setup(); "
        "from django.test.utils import setup_test_environment; setup_test_environment(); "
        "from django.test import Client; r = Client().get('/readyz'); "
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": "postgres://portal@127.0.0.1:1/portal",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["checks"]["database"] == "error"
    assert answer["body"]["checks"]["migrations"] == "error"
    assert answer["body"]["checks"]["broker"] == "ok"
    assert "127.0.0.1" not in json.dumps(answer["body"])
