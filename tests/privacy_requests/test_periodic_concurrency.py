"""Periodic tasks that run twice side by side (a tick picked up late, two workers) do the work once."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from privacy_requests.models import ConsentProof
from privacy_requests.tasks import consent_proofs_purge_expired

pytestmark = pytest.mark.django_db(transaction=True)


def _expired_proofs(count: int) -> None:
    now = timezone.now()
    ConsentProof.objects.bulk_create(
        ConsentProof(
            principal_id=f"pp-{n}",
            receipt_id=uuid.uuid4(),
            purpose_slug="offers",
            notice_version=1,
            event="granted",
            issued_at=now - timedelta(days=400),
            receipt_sha256="0" * 64,
            jws="x.y.z",
            retain_until=now - timedelta(days=1),
        )
        for n in range(count)
    )


class InThread(threading.Thread):
    """Runs ``target`` on a database connection of its own, keeping its result or error."""

    def __init__(self, target) -> None:
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None

    def run(self) -> None:
        try:
            self.result = self.target()
        except Exception as exc:
            self.error = exc
        finally:
            connections.close_all()


def _waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_two_consent_proof_purges_side_by_side_delete_and_record_once():
    _expired_proofs(50)
    # A third transaction holds one of the rows, so both runs have read the expired proofs before
    # either can delete: the moment at which counting first and deleting later claims the purge twice.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            ConsentProof.objects.select_for_update().filter(principal_id="pp-0").get()
            holding.set()
            release.wait(30)

    holder = InThread(hold)
    holder.start()
    assert holding.wait(30)
    runs = [InThread(consent_proofs_purge_expired) for _ in range(2)]
    for run in runs:
        run.start()
    if connection.vendor == "postgresql":
        deadline = time.monotonic() + 30
        while _waiting_for_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_locks() >= 2, "both purges should be waiting on the held row"
    else:
        time.sleep(0.5)  # SQLite: both wait for the write lock, so they run one after the other
    release.set()
    for thread in (holder, *runs):
        thread.join(30)
        assert thread.error is None, thread.error

    assert sorted(run.result for run in runs) == [0, 50]
    assert not ConsentProof.objects.exists()
    purges = AuditEvent.objects.filter(action=AuditAction.CONSENT_PROOF_PURGED)
    assert [event.data["count"] for event in purges] == [50]
