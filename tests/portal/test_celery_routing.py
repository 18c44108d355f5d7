"""Celery queues by kind: every task is routed by name, and a burst on one queue does not hold up another."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.services import Actor
from consents.services.consents import consent_revoke
from portal.celery import app
from portal.management.commands.runall import Command
from privacy_requests.models import PrivacyRequest, RequestStatus
from privacy_requests.services.requests import privacy_request_export_create
from tests.conftest import ROOT
from tests.consents.webhook_support import database_url_for_worker
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, UserFactory

# Where each task belongs. A task added without a route in settings.CELERY_TASK_ROUTES fails
# test_every_registered_task_is_routed_to_its_queue until it is given one here and there.
EXPECTED_QUEUES = {
    "consents.tasks_delivery.outbox_event_deliver": "delivery",
    "consents.tasks_delivery.outbox_events_deliver": "delivery",
    "consents.tasks_delivery.outbox_relay": "delivery",
    "consents.tasks_delivery.partner_webhook_disabled_notify": "default",
    "consents.tasks.consents_expire_due": "default",
    "consents.tasks.consents_remind_expiring": "default",
    "consents.tasks.app_grants_expire_due": "default",
    "privacy_requests.tasks.agent_request_dispatch": "default",
    "privacy_requests.tasks.agent_requests_dispatch_pending": "default",
    "consents.tasks.material_change_notify": "default",
    "consents.tasks.material_change_notify_sweep": "default",
    "consents.tasks.flagged_access_notify_sweep": "default",
    "consents.tasks.flagged_access_notify": "default",
    "consents.tasks.monthly_digests_send": "default",
    "consents.tasks.publication_run_process": "default",
    "consents.tasks.publication_runs_resume": "default",
    "portal.requests.tasks.privacy_export_build": "requests",
    "portal.requests.tasks.privacy_deletion_execute": "requests",
    "portal.requests.tasks.privacy_requests_tick": "requests",
    "portal.requests.tasks.privacy_exports_purge_expired": "requests",
    "portal.requests.tasks.consent_proofs_purge_expired": "requests",
    "portal.tasks.sessions_clear_expired": "default",
    "audit.tasks.audit_chains_verify": "default",
    "audit.tasks.access_event_partitions_maintain": "default",
}
QUEUES = {"default", "delivery", "requests"}


def _registered_task_names() -> set[str]:
    """The project's tasks as a worker registers them (Celery's own and test-only tasks left out)."""
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith(("celery.", "tests."))}


def test_every_registered_task_is_routed_to_its_queue(settings, db):
    # Loading the task modules the way a worker does runs Django's system checks, which read the database.
    names = _registered_task_names()
    assert names == set(EXPECTED_QUEUES), "a task without an expected queue (or a queue without its task)"
    assert set(settings.CELERY_TASK_ROUTES) == names, "every task needs an explicit route in settings"
    routed = {name: app.amqp.router.route({}, name)["queue"].name for name in names}
    assert routed == EXPECTED_QUEUES


def test_beat_entries_are_sent_to_the_queue_of_their_task():
    for entry in app.conf.beat_schedule.values():
        assert "queue" not in entry.get("options", {}), "beat must not bypass the routes"
        assert app.amqp.router.route({}, entry["task"])["queue"].name == EXPECTED_QUEUES[entry["task"]]


def test_workers_consume_every_queue_by_default_and_the_run_command_names_them_all():
    assert app.conf.task_default_queue == "default"
    # A worker without -Q consumes the declared queues: the test and benchmark workers rely on it.
    assert set(app.amqp.queues) == QUEUES
    worker = Command().processes("127.0.0.1:8000")["worker"]
    assert set(worker[worker.index("-Q") + 1].split(",")) == QUEUES


# --- Real workers on separate queues --------------------------------------------------------

EXPORTS = 40


def _start_worker(queue: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "--loglevel", "INFO"),
            *("--concurrency", "1", "--pool", "prefork", "--hostname", f"{queue}-{os.getpid()}@%h"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait(condition, what: str, procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert all(proc.poll() is None for proc in procs), "a worker died"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def queue_workers(transactional_db, media_root, tmp_path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """One worker per kind, as production runs them: ``requests`` and ``delivery``, one process each."""
    if not os.environ.get("REDIS_URL"):
        pytest.fail("REDIS_URL must point at the test Redis (the README's test command starts one)")
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_worker(),
        "MEDIA_ROOT": str(media_root),
        "WEBHOOK_ALLOW_PRIVATE": "1",
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for queue in ("delivery", "requests"):
            log = tmp_path / f"{queue}.log"
            procs[queue] = _start_worker(queue, log, env)
            _wait(lambda log=log: b" ready." in log.read_bytes(), f"the {queue} worker", list(procs.values()))
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_exports_does_not_delay_a_revocation(queue_workers, webhook_receiver):
    purpose = PurposeFactory(slug="queued-offers")
    partner = PartnerFactory(slug="queue-partner", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    revoker = UserFactory(email="revoker@example.com")
    for n in range(EXPORTS):
        # Each export is queued on "requests" as its transaction commits.
        privacy_request_export_create(user=UserFactory(email=f"exporter{n}@example.com"), language="en")
    exports = PrivacyRequest.objects.filter(user__email__startswith="exporter")
    workers = list(queue_workers.values())
    _wait(lambda: exports.filter(status=RequestStatus.COMPLETED).exists(), "the first export", workers)

    revoked_at = time.time()
    consent_revoke(user=revoker, purpose=purpose, actor=Actor.consumer(revoker))
    (received,) = webhook_receiver.wait_for(1, timeout=60)
    still_queued = exports.filter(status=RequestStatus.RECEIVED).count()

    took = received.received_at - revoked_at
    print(f"revocation delivered {took:.2f} s after the commit, {still_queued}/{EXPORTS} exports still queued")
    assert still_queued > 0, "the exports were no longer backed up: the test proves nothing"
    assert took < 10
    assert received.verify(partner.webhook_secret)["type"] == "consent.revoked"
