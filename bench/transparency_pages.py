"""Server time of /access/ and /activity/ for a consumer with 100,000 access events.

Usage: .venv/bin/python bench/transparency_pages.py [--events 100000] [--requests 200] [--background 10000000]
Uses a throwaway SQLite database unless DATABASE_URL is set (then that database is used as is:
point it at an empty scratch database, or at a copy of one loaded by ``background_events.py``).
Prints p50/p95 per page and the ratio against a baseline page (the anonymous landing page) measured
in the same run, and the queries each page ran.
``--background N`` adds N other consumers' events first (PostgreSQL only, bench/background_events.py),
so the pages read one consumer's events out of a partitioned table that holds N more.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="bench-transparency-"))
os.environ.setdefault("PORTAL_ENV", "development")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from background_events import background_events_load, stored_events  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.services import Actor  # noqa: E402
from consents.models import DataCategory, Partner, PartnerKind, Purpose, Sharing  # noqa: E402
from consents.services.access import AccessReport, access_events_ingest  # noqa: E402
from consents.services.consents import consent_grant, consent_revoke  # noqa: E402
from consents.services.notices import purpose_version_publish  # noqa: E402
from consents.services.partners import partner_subject_ensure  # noqa: E402
from portal.models import User  # noqa: E402


def build(events: int) -> User:
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench@example.com", "bench-password-2026")
    categories = [
        DataCategory.objects.create(
            slug=f"cat-{i}", name=f"Category {i}", translations={"zh-hans": {"name": f"类别 {i}"}}
        )
        for i in range(4)
    ]
    purposes = []
    for i in range(5):
        purpose = Purpose.objects.create(slug=f"purpose-{i}", name=f"Purpose {i}", legal_basis="consent")
        purpose_version_publish(
            purpose=purpose,
            description="Bench",
            retention="1 year",
            data_categories=categories,
            material=False,
            change_summary="",
            actor=Actor.system("bench"),
            translations={"zh-hans": {"name": "基准用途", "description": "基准测试", "retention": "一年"}},
        )
        purpose.refresh_from_db()
        purposes.append(purpose)
    partners = []
    for i in range(6):
        partner = Partner.objects.create(
            slug=f"partner-{i}", name=f"Partner {i}", kind=PartnerKind.ADVERTISER, country="DE"
        )
        for purpose in purposes:
            Sharing.objects.create(partner=partner, purpose=purpose).data_categories.set(categories[:3])
        partners.append((partner, partner_subject_ensure(partner=partner, user=user)))
    for purpose in purposes:
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    now = timezone.now()
    batch = 1000
    for start in range(0, events, batch):
        partner, subject = partners[(start // batch) % len(partners)]
        reports = [
            AccessReport(
                event_id=f"e{n}",
                subject_id=subject.subject_id,
                purpose=f"purpose-{n % 5}",
                categories=(f"cat-{n % 4}",),
                accessed_at=now - timedelta(minutes=n),
                action="read",
            )
            for n in range(start, min(start + batch, events))
        ]
        access_events_ingest(partner=partner, reports=reports)
    return user


def timed(client: Client, path: str, requests: int) -> tuple[list[float], int]:
    queries: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        queries.append(sql)
        return execute(sql, params, many, context)

    # Django's own query log is reset at every request start, so count through a wrapper instead.
    with connection.execute_wrapper(count):
        client.get(path)  # warm up
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return samples, len(queries)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--background", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    user = build(args.events)
    print(f"built {args.events} access events in {time.perf_counter() - started:.1f} s")
    background_events_load(
        args.background,
        partner=Partner.objects.get(slug="partner-0"),
        purpose=Purpose.objects.get(slug="purpose-0"),
        category="cat-0",
    )
    print(f"the consumer's {args.events:,} events among {stored_events():,} stored")
    anonymous = Client()
    baseline, _ = timed(anonymous, "/", args.requests)
    client = Client()
    client.force_login(user)
    print(f"{'page':<16}{'p50 ms':>10}{'p95 ms':>10}{'p95 / baseline':>18}{'queries':>9}")
    print(f"{'/ (baseline)':<16}{statistics.median(baseline):>10.1f}{p95(baseline):>10.1f}{1.0:>18.2f}")
    for path in ["/access/", "/activity/", "/access/events/"]:
        samples, queries = timed(client, path, args.requests)
        print(
            f"{path:<16}{statistics.median(samples):>10.1f}{p95(samples):>10.1f}"
            f"{p95(samples) / p95(baseline):>18.2f}{queries:>9}"
        )
    print("target: p95 <= 50 ms for /access/ and /activity/")


if __name__ == "__main__":
    main()
