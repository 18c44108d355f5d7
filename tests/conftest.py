import base64
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import time_machine
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock",
        metavar="INSTANT",
        help="start every test with the clock at this ISO 8601 instant (it ticks on); browser and worker "
        "tests, whose other processes cannot share a travelled clock, are deselected",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--clock"):
        return
    kept = [item for item in items if not item.get_closest_marker("browser") and not item.get_closest_marker("worker")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the shipped translations when a catalogue is newer than its compiled file.

    The ``.mo`` files are build output (ignored by git), so plain ``pytest`` on a fresh clone would
    otherwise test the Chinese pages against no catalogue at all.
    """
    stale = [
        po
        for po in (ROOT / "locale").glob("*/LC_MESSAGES/*.po")
        if not po.with_suffix(".mo").exists() or po.with_suffix(".mo").stat().st_mtime < po.stat().st_mtime
    ]
    if stale:
        from django.core.management import call_command

        call_command("compilemessages", ignore_patterns=[".venv/*"], verbosity=0)


@pytest.fixture(autouse=True)
def _clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """With ``--clock``, each test starts at that instant; tests that travel themselves still can."""
    instant = request.config.getoption("--clock")
    if not instant:
        yield
        return
    with time_machine.travel(instant, tick=True):
        yield


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Rate-limit counters live in the cache; no test may inherit another's.
    cache.clear()
    yield
    cache.clear()


# Rows a data migration creates, which a transactional test's flush removes.
_staff_recipient_migration = importlib.import_module("consents.migrations.0005_staff_access_recipient")
_notice_translations_migration = importlib.import_module("consents.migrations.0009_notice_translations")


@pytest.fixture(autouse=True)
def _migration_data(request: pytest.FixtureRequest) -> None:
    """Every test with a database finds the staff access recipient, flushed by an earlier test or not."""
    if "_django_db_helper" not in request.fixturenames:
        return
    request.getfixturevalue("_django_db_helper")
    from django.apps import apps

    _staff_recipient_migration.staff_recipient_create(apps, None)
    _notice_translations_migration.notice_translations_fill(apps, None)


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
def consent_catalogue(db):
    """A small published catalogue: three consent purposes (one GPC-covered, one time-bound) and one essential."""
    from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory

    contact = DataCategoryFactory(slug="contact-details", name="Contact details")
    transactions = DataCategoryFactory(slug="transactions", name="Transaction history", sensitive=True)
    browsing = DataCategoryFactory(slug="browsing", name="Browsing behaviour")
    offers = PurposeFactory(
        slug="personalised-offers",
        name="Personalised offers",
        category="marketing",
        position=1,
        notice="We suggest offers that fit how you use your account.",
        notice__categories=[contact, transactions],
        notice__retention="Until you withdraw, then 30 days",
    )
    ads = PurposeFactory(
        slug="advertising-partners",
        name="Sharing with advertising partners",
        category="advertising",
        gpc_covered=True,
        position=2,
        notice="We share your browsing behaviour with advertisers to show you relevant ads.",
        notice__categories=[browsing],
    )
    credit = PurposeFactory(
        slug="credit-check",
        name="Credit-risk assessment",
        category="lending",
        default_duration_type="time_bound",
        default_period_days=90,
        position=3,
        notice="A credit bureau checks your transactions to assess a loan application.",
        notice__categories=[transactions],
    )
    fraud = PurposeFactory(
        slug="fraud-prevention",
        name="Fraud prevention",
        category="security",
        legal_basis="legal_obligation",
        position=0,
        notice="We screen transactions to detect fraud, as the law requires.",
        notice__categories=[transactions],
    )
    adco = PartnerFactory(slug="adco", name="AdCo Media", kind="advertiser", country="US")
    mailer = PartnerFactory(slug="mailer", name="Mailer GmbH", kind="service_provider", country="DE")
    bureau = PartnerFactory(slug="bureau", name="Credit Bureau Ltd", kind="data_broker", country="GB")
    SharingFactory(partner=adco, purpose=offers, categories=[contact])
    SharingFactory(partner=mailer, purpose=offers)
    SharingFactory(partner=adco, purpose=ads)
    SharingFactory(partner=bureau, purpose=credit)
    return {
        "offers": offers,
        "ads": ads,
        "credit": credit,
        "fraud": fraud,
        "adco": adco,
        "mailer": mailer,
        "bureau": bureau,
    }


@pytest.fixture
def mfa_staff(db):
    """A staff member with TOTP turned on: the only kind of user the admin lets in."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from tests.factories import StaffFactory

    staff = StaffFactory(email="officer@example.com")
    TOTP.activate(staff, generate_totp_secret())
    return staff


@pytest.fixture
def staff_client(client, mfa_staff):
    client.force_login(mfa_staff)
    return client


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """Django's default and `exports` storages in a temporary folder (export files land here)."""
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


# Partner API -------------------------------------------------------------------------------


@dataclass
class ApiPartner:
    """A partner with an API credential and a fresh access token from ``/oauth/token/``."""

    partner: Any
    credential: Any
    secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def oauth_token(client, credential, secret: str, scope: str | None = None):
    """The token endpoint's response for a client-credentials request with HTTP Basic auth."""
    basic = base64.b64encode(f"{credential.application.client_id}:{secret}".encode()).decode()
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return client.post("/oauth/token/", data, headers={"authorization": f"Basic {basic}"})


@pytest.fixture
def api_partner_factory(db, client):
    """``make(slug=..., scopes=[...])`` → an ``ApiPartner`` whose token carries those scopes."""
    from audit.services import Actor
    from consents.api.auth import process_state_clear
    from consents.models import PARTNER_SCOPES
    from consents.services.partners import partner_credential_create
    from tests.factories import PartnerFactory

    process_state_clear()

    def make(slug: str = "partner-a", scopes: tuple[str, ...] = PARTNER_SCOPES, **partner_fields) -> ApiPartner:
        partner = PartnerFactory(slug=slug, **partner_fields)
        credential, secret = partner_credential_create(
            partner=partner, label="production", scopes=scopes, actor=Actor.system("tests")
        )
        response = oauth_token(client, credential, secret)
        assert response.status_code == 200, response.content
        return ApiPartner(partner, credential, secret, response.json()["access_token"])

    yield make
    process_state_clear()


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

    # Services queue some tasks by name: load the task modules the Celery app lists, as a worker does.
    for module in app.loader.default_modules:
        importlib.import_module(module)
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
