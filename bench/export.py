"""Benchmark: export of one consumer with a large history — wall time and peak memory of the worker process.

    .venv/bin/python bench/export.py [--rows 100000]

Creates a throw-away SQLite database under a temporary folder (or uses ``DATABASE_URL`` if set,
which must then point at a scratch database), seeds one consumer with ``--rows`` rows of each
kind in ``GENERATORS`` (audit events, consent-history rows and access events; add one function
there for each new kind of exported data), then runs the export Celery task in a separate
Python process, as a worker would, and reads that process's peak resident memory (``ru_maxrss``).
The baseline is the same process's peak just before the export starts (Django and Celery loaded,
connection open), so the figures show what the export itself adds.

Targets (issue 6): at most 10 s and at most 150 MB peak RSS.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_SECONDS = 10.0
TARGET_MB = 150.0


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def _audit_events(user, rows: int) -> None:
    """``rows`` events on the consumer's audit chain, sealed and linked like real ones."""
    from django.utils import timezone

    from audit.models import AuditChain, AuditEvent
    from audit.services import chain_key, event_seal

    chain, _ = AuditChain.objects.get_or_create(key=chain_key(user))
    start = timezone.now() - timedelta(days=365)
    prev_hash, seq, batch = chain.last_hash, chain.last_seq, []
    for i in range(rows):
        seq += 1
        event = AuditEvent(
            chain=chain.key,
            seq=seq,
            occurred_at=start + timedelta(seconds=i * 300),
            actor_kind="partner",
            actor_id="7",
            actor_label="Acme Analytics",
            subject=user,
            action="access.recorded",
            target_type="consents.consent",
            target_id=str(i % 10 + 1),
            data={"purpose": f"purpose-{i % 10}", "categories": ["contact", "transactions"], "n": i},
            prev_hash=prev_hash,
        )
        event.hash = event_seal(event)
        prev_hash = event.hash
        batch.append(event)
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)
    chain.last_seq, chain.last_hash = seq, prev_hash
    chain.save()


def _consent_history(user, rows: int) -> None:
    """``rows`` history rows: the consumer's ten consents flipping between granted and withdrawn."""
    from django.utils import timezone

    from audit.services import Actor
    from consents.models import Consent
    from consents.services.consents import consent_grant
    from tests.factories import PurposeFactory

    consents = [
        consent_grant(user=user, purpose=PurposeFactory(slug=f"purpose-{n}"), actor=Actor.consumer(user))
        for n in range(10)
    ]
    historical = Consent.history.model
    start = timezone.now() - timedelta(days=365)
    batch = []
    for i in range(rows):
        consent = consents[i % 10]
        revoked = i % 2 == 1
        when = start + timedelta(seconds=i * 300)
        batch.append(
            historical(
                id=consent.pk,
                user_id=user.pk,
                purpose_id=consent.purpose_id,
                version_id=consent.version_id,
                status="revoked" if revoked else "granted",
                method="web",
                duration_type="persistent",
                granted_at=when,
                revoked_at=when if revoked else None,
                revocation_reason="user_action" if revoked else "",
                revocation_note="Not now, thank you" if revoked else "",
                changed_by="consumer",
                updated_at=when,
                history_date=when,
                history_type="~",
            )
        )
        if len(batch) == 5000:
            historical.objects.bulk_create(batch)
            batch = []
    historical.objects.bulk_create(batch)


def _access_events(user, rows: int) -> None:
    """``rows`` partner-reported accesses over the last year, through the real ingest service."""
    from django.utils import timezone

    from consents.services.access import AccessReport, access_events_ingest
    from consents.services.partners import partner_subject_ensure
    from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory

    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="bench-access", notice__categories=[contact])
    partner = PartnerFactory(slug="bench-partner", name="Bench Partner")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    subject = partner_subject_ensure(partner=partner, user=user)
    now = timezone.now()
    for start in range(0, rows, 1000):
        reports = [
            AccessReport(
                event_id=f"bench-{n}",
                subject_id=subject.subject_id,
                purpose="bench-access",
                categories=("contact",),
                accessed_at=now - timedelta(seconds=n * 300),
                action="read",
                detail="Statement generated",
            )
            for n in range(start, min(start + 1000, rows))
        ]
        access_events_ingest(partner=partner, reports=reports)


# One generator per kind of exported data that grows with the consumer's history.
GENERATORS: dict[str, Callable[..., None]] = {
    "audit events": _audit_events,
    "consent-history rows": _consent_history,
    "access events": _access_events,
}


def seed(rows: int) -> None:
    """Run in its own process, so that the measuring process starts small (Linux hands a parent's peak
    RSS down to its children)."""
    django_setup()
    from django.core.management import call_command

    from privacy_requests.services.requests import privacy_request_export_create
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    user = UserFactory(email="bench-consumer@example.com", first_name="Bench", last_name="Consumer")
    for name, generate in GENERATORS.items():
        started = time.perf_counter()
        generate(user, rows)
        print(f"  seeded {rows:,} {name} in {time.perf_counter() - started:.1f} s", flush=True)
    print(privacy_request_export_create(user=user, language="en").pk)


def worker(request_id: str) -> None:
    """The measured process: load everything a worker has, note the baseline, run the task."""
    django_setup()
    from django.db import connection

    from privacy_requests.models import PrivacyRequest
    from privacy_requests.tasks import privacy_export_build

    connection.ensure_connection()
    PrivacyRequest.objects.get(pk=request_id)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    privacy_export_build.apply(args=[request_id]).get()
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    request = PrivacyRequest.objects.get(pk=request_id)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "baseline_kb": baseline_kb,
                "peak_kb": peak_kb,
                "status": request.status,
                "file_size": request.file_size,
                "file": request.result_file.name,
            }
        )
    )


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each kind (default 100,000)")
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.rows)
        return
    if args.worker:
        worker(args.worker)
        return

    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ.setdefault("PORTAL_ENV", "development")
    os.environ["PORTAL_VAR_DIR"] = str(scratch)
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ["DEBUG"] = "0"  # no query log growing in memory
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    # The task runs in the measuring process itself; no broker is involved.
    os.environ.pop("REDIS_URL", None)

    print(f"Export benchmark: {args.rows:,} rows of each kind, scratch folder {scratch}", flush=True)
    output = _run("--seed", "--rows", str(args.rows)).rstrip().splitlines()
    print("\n".join(output[:-1]), flush=True)
    figures = json.loads(_run("--worker", output[-1]).strip().splitlines()[-1])

    total_rows = args.rows * len(GENERATORS)
    peak_mb, baseline_mb = figures["peak_kb"] / 1024, figures["baseline_kb"] / 1024
    archive = scratch / "media" / figures["file"]
    seconds = figures["seconds"]
    print(f"  status:            {figures['status']}, ZIP {figures['file_size'] / 1e6:.1f} MB")
    print(f"  sha256 of the ZIP: {hashlib.sha256(archive.read_bytes()).hexdigest()[:16]}…")
    print(f"  rows exported:     {total_rows:,} (+ profile, receipts, requests)")
    rate = total_rows / seconds
    print(f"  wall time:         {seconds:.2f} s  ({rate:,.0f} rows/s)  target ≤ {TARGET_SECONDS:.0f} s")
    print(f"  peak RSS:          {peak_mb:.1f} MB  target ≤ {TARGET_MB:.0f} MB")
    print(f"  baseline RSS:      {baseline_mb:.1f} MB  (the same process before the export)")
    print(f"  ratio peak/base:   {peak_mb / baseline_mb:.2f}  (the export adds {peak_mb - baseline_mb:.1f} MB)")
    met = seconds <= TARGET_SECONDS and peak_mb <= TARGET_MB
    print("  targets:           " + ("met" if met else "MISSED"))
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
