"""Fill the access log with other consumers' events, so a benchmark runs against a big table.

Used by access_ingest.py and transparency_pages.py (``--background N``). The rows are written by
PostgreSQL itself (INSERT ... SELECT generate_series, a million per statement) over the twelve months
before now, after the monthly partitions for them are created the way the daily task does. On
SQLite the same SQL shape is not available, so the option asks for PostgreSQL.

Loading ten million rows through the table's indexes takes a while, so it can be done once and
copied: ``python bench/background_events.py 10000000`` migrates the database of DATABASE_URL and
loads the events under a partner and purpose of their own; ``createdb --template`` then gives each
benchmark a copy to run on (without ``--background``: they count what the database already holds).
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("PORTAL_ENV", "development")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AccessEvent
from audit.partitions import access_event_partitions_create, add_months, month_start
from consents.models import Partner, PartnerKind, Purpose
from portal.models import User

CHUNK = 1_000_000
CONSUMERS = 20_000
SPAN = timedelta(days=365)


def background_events_load(total: int, *, partner: Partner, purpose: Purpose, category: str) -> None:
    """Insert ``total`` access events of ``CONSUMERS`` other consumers, spread over the last year."""
    if total <= 0:
        return
    if connection.vendor != "postgresql":
        raise SystemExit("--background needs PostgreSQL (DATABASE_URL)")
    started = time.perf_counter()
    now = timezone.now()
    first = month_start(now - SPAN)
    months = (now.year - first.year) * 12 + now.month - first.month
    access_event_partitions_create(months_ahead=months + 1, at=first)
    unusable = make_password(None)
    User.objects.bulk_create(
        [User(email=f"background{n}@example.com", password=unusable) for n in range(CONSUMERS)],
        batch_size=5000,
        ignore_conflicts=True,
    )
    user_ids = list(User.objects.filter(email__startswith="background").values_list("pk", flat=True))
    step = SPAN.total_seconds() / total
    for start in range(0, total, CHUNK):
        end = min(start + CHUNK, total) - 1
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO audit_accessevent (partner_id, partner_event_id, user_id, purpose_id, categories,
                    action, accessed_at, received_at, detail, verdict, content_hash)
                SELECT %(partner)s, 'background-' || n, (%(users)s::bigint[])[1 + n %% %(count)s], %(purpose)s,
                    jsonb_build_array(%(category)s::text), 'read', %(now)s - make_interval(secs => n * %(step)s),
                    %(now)s - make_interval(secs => n * %(step)s), '', 'covered', md5(n::text)
                FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS n
                """,
                {
                    "partner": partner.pk,
                    "users": user_ids,
                    "count": len(user_ids),
                    "purpose": purpose.pk,
                    "category": category,
                    "now": now,
                    "step": step,
                    "start": start,
                    "end": end,
                },
            )
        print(f"  background: {end + 1:,} / {total:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_accessevent")
    print(
        f"loaded {total:,} background events into {months + 2} monthly partitions from {first:%Y-%m} "
        f"to {add_months(first, months + 1):%Y-%m} in {time.perf_counter() - started:.0f} s"
    )


def stored_events() -> int:
    """How many access events the database holds (other consumers' included): the benches print it."""
    return AccessEvent.objects.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", type=int, help="how many background events to load")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    partner, _ = Partner.objects.get_or_create(
        slug="background", defaults={"name": "Background partner", "kind": PartnerKind.ADVERTISER, "country": "DE"}
    )
    purpose, _ = Purpose.objects.get_or_create(
        slug="background", defaults={"name": "Background purpose", "legal_basis": "consent"}
    )
    background_events_load(args.events, partner=partner, purpose=purpose, category="background")


if __name__ == "__main__":
    main()
