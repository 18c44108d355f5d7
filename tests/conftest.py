import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import mail
from django.core.cache import cache

from tests.factories import UserFactory

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls from the
# live_server tests would otherwise be refused as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Rate-limit counters live in the cache; no test may inherit another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def consumer(db):
    return UserFactory(email="consumer@example.com")


@pytest.fixture
def other_consumer(db):
    return UserFactory(email="other@example.com")


@pytest.fixture
def consumer_client(client, consumer):
    client.force_login(consumer)
    return client


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def last_email_link(pattern: str = r"https?://\S+") -> str:
    """The first link matching ``pattern`` in the most recent email sent."""
    assert mail.outbox, "no email was sent"
    match = re.search(pattern, mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(0)


@pytest.fixture
def celery_worker_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process against the test broker (Redis)."""
    if not os.environ.get("REDIS_URL"):
        pytest.fail("REDIS_URL must point at the test Redis (the README's test command starts one)")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--pool",
            "prefork",
            "--include",
            "tests.portal.celery_tasks",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env={**os.environ},
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """Django's default storage in a temporary folder (export files land here)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def reauthenticated_client(consumer_client):
    """The consumer's client after entering the password again, as allauth asks before sensitive actions."""
    from django.urls import reverse

    from tests.factories import PASSWORD

    response = consumer_client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302, response.content
    return consumer_client


@pytest.fixture
def worker_on_test_db(monkeypatch, transactional_db, media_root, request):
    """A real Celery worker that uses this test's database and storage (the test must commit its data)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MEDIA_ROOT", str(media_root))
    return request.getfixturevalue("celery_worker_process")
