"""A material notice change for a purpose with many consents: duration, consents/s, longest lock.

Usage: .venv/bin/python bench/material_publication.py [--consents 1000000] [--batch 100]
A throwaway SQLite database unless DATABASE_URL points at a scratch database (for PostgreSQL);
each run adds its own purpose, partner and consumers, so it may run again on the same database.

The consumers and their grants are bulk-inserted (the setup is not measured). Then a staff
member publishes a material notice (``purpose_version_publish``: the version and its publication
run, one short transaction) and the run is driven as the Celery task drives it, one
``publication_run_step`` (one batch, one transaction) after another, in this process.

The longest lock on consent rows is measured three ways:
- on PostgreSQL, from the batch's ``SELECT ... FOR NO KEY UPDATE OF`` the consents (seen by an
  ``execute_wrapper``) to its commit: the time a consent row stays locked; the target is judged on it;
- every batch transaction is timed whole (an upper bound; on SQLite, which locks the whole
  database for a write transaction, the measure the target is judged on);
- on PostgreSQL a second connection samples ``pg_locks`` every 20 ms and records, for each
  transaction that holds a lock on the consent table, how long that transaction has been open
  (an upper bound too: it counts the batch's reads before its locks).
Target (issue 13): 1,000,000 consents, no lock on consents held for more than a second.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="bench-publication-"))
os.environ.setdefault("PORTAL_ENV", "development")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.services import Actor  # noqa: E402
from consents.models import (  # noqa: E402
    Consent,
    ConsentMethod,
    ConsentStatus,
    DataCategory,
    Initiator,
    OutboxEvent,
    Partner,
    PartnerKind,
    PublicationRun,
    PublicationRunState,
    Purpose,
    Sharing,
)
from consents.services.notices import purpose_version_publish  # noqa: E402
from consents.services.publication import publication_run_step  # noqa: E402
from portal.models import User  # noqa: E402

INSERT_CHUNK = 10_000
SAMPLE_SECONDS = 0.02
ZH = {"name": "基准用途", "description": "基准测试", "retention": "一年"}


def build(count: int) -> Purpose:
    """A purpose shared with one partner and ``count`` consumers who granted its first notice."""
    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:8]
    category = DataCategory.objects.create(
        slug=f"bench-{tag}", name="Balances", translations={"zh-hans": {"name": "余额"}}
    )
    purpose = Purpose.objects.create(slug=f"bench-{tag}", name="Bench offers", legal_basis="consent")
    publish(purpose, [category], material=False)
    purpose.refresh_from_db()
    partner = Partner.objects.create(slug=f"bench-{tag}", name="Bench", kind=PartnerKind.ADVERTISER, country="DE")
    Sharing.objects.create(partner=partner, purpose=purpose).data_categories.set([category])
    password = make_password(None)
    now = timezone.now()
    for start in range(0, count, INSERT_CHUNK):
        size = min(INSERT_CHUNK, count - start)
        users = User.objects.bulk_create(
            [User(email=f"c{start + n}-{tag}@example.com", password=password) for n in range(size)]
        )
        if connection.vendor != "postgresql":
            # Only PostgreSQL returns the new primary keys from a bulk insert.
            users = list(User.objects.filter(email__endswith=f"-{tag}@example.com").order_by("pk")[start:])
        Consent.objects.bulk_create(
            [
                Consent(
                    user=user,
                    purpose=purpose,
                    version=purpose.current_version,
                    status=ConsentStatus.GRANTED,
                    method=ConsentMethod.WEB,
                    granted_at=now,
                    changed_by=Initiator.CONSUMER,
                )
                for user in users
            ]
        )
    return purpose


def publish(purpose: Purpose, categories: list[DataCategory], *, material: bool) -> None:
    purpose_version_publish(
        purpose=purpose,
        description="Bench notice" if not material else "Bench notice, now with a new recipient",
        retention="1 year",
        data_categories=categories,
        material=material,
        change_summary="New recipient" if material else "",
        actor=Actor.system("bench"),
        translations={"zh-hans": ZH | ({"change_summary": "新接收方"} if material else {})},
    )


def _mark(marks: list[float]) -> None:
    marks.append(time.perf_counter())


def _note_consent_lock(marks: list[float], execute, sql, params, many, context):  # type: ignore[no-untyped-def]
    """Note when a batch first locks consent rows (PostgreSQL: the ``SELECT ... FOR ... UPDATE OF`` them)."""
    if not marks and f'UPDATE OF "{Consent._meta.db_table}"' in sql:
        marks.append(time.perf_counter())
    return execute(sql, params, many, context)


class LockSampler(threading.Thread):
    """Samples, from its own connection, how long transactions holding consent-table locks have been open."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.longest = 0.0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        params = connections["default"].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as conn:
            table = Consent._meta.db_table
            query = (
                "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - a.xact_start)), 0)"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.relation = %s::regclass AND l.mode IN ('RowShareLock', 'RowExclusiveLock')"
                " AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL"
            )
            while not self.stop.is_set():
                row = conn.execute(query, [table]).fetchone()
                self.longest = max(self.longest, float(row[0]) if row else 0.0)
                self.samples += 1
                time.sleep(SAMPLE_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--consents", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=settings.PUBLICATION_BATCH_SIZE)
    args = parser.parse_args()
    settings.PUBLICATION_BATCH_SIZE = args.batch
    started = time.perf_counter()
    purpose = build(args.consents)
    setup_seconds = time.perf_counter() - started

    sampler = LockSampler() if connection.vendor == "postgresql" else None
    if sampler is not None:
        sampler.start()
    categories = list(purpose.current_version.data_categories.all())
    started = time.perf_counter()
    publish(purpose, categories, material=True)
    publish_seconds = time.perf_counter() - started
    purpose.refresh_from_db()
    run = PublicationRun.objects.get(version=purpose.current_version)
    longest_batch = 0.0
    longest_row_lock = 0.0
    durations: list[float] = []
    batches = 0
    while run.state == PublicationRunState.RUNNING:
        committed: list[float] = []
        locked: list[float] = []
        batch_started = time.perf_counter()
        with connection.execute_wrapper(partial(_note_consent_lock, locked)), transaction.atomic():
            # Registered first, so it runs first after the commit, before the batch's own callbacks
            # (queueing the partners' deliveries), which hold no lock.
            transaction.on_commit(partial(_mark, committed))
            stepped = publication_run_step(run_id=run.pk)
        durations.append(committed[0] - batch_started)
        longest_batch = max(longest_batch, durations[-1])
        if locked:
            longest_row_lock = max(longest_row_lock, committed[0] - locked[0])
        assert stepped is not None
        run = stepped
        batches += 1
        if batches % 100 == 0:
            print(
                f"  … {run.done:,} / {run.total:,} ({run.percent}%), ETA {run.eta():%H:%M:%S},"
                f" longest batch so far {longest_batch * 1000:.0f} ms",
                flush=True,
            )
    total_seconds = time.perf_counter() - started
    if sampler is not None:
        sampler.stop.set()
        sampler.join()

    flipped = Consent.objects.filter(purpose=purpose, status=ConsentStatus.RECONSENT_REQUIRED).count()
    events = OutboxEvent.objects.filter(consent__purpose=purpose, event_type="consent.reconsent_required").count()
    assert flipped == args.consents, (flipped, args.consents)
    assert events == args.consents, (events, args.consents)

    print(
        f"database: {connection.vendor}, {args.consents:,} consents, batches of {args.batch}"
        f" (setup {setup_seconds:.1f} s)"
    )
    print(f"  publish (version + run, one transaction): {publish_seconds * 1000:>9.1f} ms")
    print(f"  whole publication (publish + {batches:,} batches): {total_seconds:>9.1f} s")
    rate = args.consents / total_seconds
    print(f"  throughput: {rate:>9,.0f} consents/s")
    print(f"  projection for 1,000,000 consents at this rate: {1_000_000 / rate / 3600:>9.1f} h")
    print(f"  longest batch transaction: {longest_batch * 1000:>9.1f} ms")
    if connection.vendor == "postgresql":
        print(f"  longest consent row lock (its SELECT ... FOR UPDATE to commit): {longest_row_lock * 1000:>9.1f} ms")
    print(
        f"  batch transactions: median {statistics.median(durations) * 1000:.1f} ms,"
        f" first {durations[0] * 1000:.1f} ms, longest after the first {max(durations[1:] or [0]) * 1000:.1f} ms"
    )
    if sampler is not None:
        print(
            f"  longest transaction seen holding consent-table locks (pg_locks, {sampler.samples:,} samples):"
            f" {sampler.longest * 1000:>9.1f} ms"
        )
    # SQLite locks the whole database for a write transaction; PostgreSQL locks the batch's rows.
    longest = longest_row_lock if connection.vendor == "postgresql" else longest_batch
    print(f"  target: no lock on consents held for more than 1 s: {'met' if longest <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
