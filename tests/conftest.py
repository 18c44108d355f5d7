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
def webhook_receiver():
    """A real HTTP server on 127.0.0.1 recording webhooks; ``respond(500, 200)`` scripts its answers."""
    from tests.consents.webhook_support import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Tasks queued by the code under test run in this process, at once (countdowns are ignored)."""
    from portal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def delivery_worker(transactional_db) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (2 processes, Redis) on the test database, allowed to reach loopback receivers."""
    from tests.consents.webhook_support import database_url_for_worker

    if not os.environ.get("REDIS_URL"):
        pytest.fail("REDIS_URL must point at the test Redis (the README's test command starts one)")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING"),
            *("--concurrency", "2", "--pool", "prefork", "--without-heartbeat", "--without-gossip"),
            "--without-mingle",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url_for_worker(), "WEBHOOK_ALLOW_PRIVATE": "1"},
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
