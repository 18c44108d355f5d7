"""Access-event ingest through the partner API: events per second, batches of 500.

Usage: .venv/bin/python bench/access_ingest.py [--events 50000] [--batch 500] [--background 10000000]
                                              [--connections 4] [--seconds 5]
A throwaway SQLite database unless DATABASE_URL points at a scratch database (for PostgreSQL), empty
or a copy of one loaded by ``background_events.py``.
``--background N`` first loads N other consumers' events (PostgreSQL only, bench/background_events.py),
so the ingest writes into a partitioned table that already holds them.
Every request goes through the whole Django stack in process (OAuth bearer token, scope check,
throttle, JSON parsing, validation, verdicts, bulk insert, rollups). The baseline, measured in the
same run on the same data shape, is the ingest service called directly, without HTTP.
Then gunicorn (2 sync workers) takes batches from ``--connections`` concurrent wrk clients, as
several partners or a partner's several workers would send them (``through_wrk``).
Target (issue 5): at least 5,000 events per second through the endpoint.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="bench-ingest-"))
os.environ.setdefault("PORTAL_ENV", "development")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("PARTNER_API_RATE", "1000000/minute")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from background_events import background_events_load, stored_events  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.services import Actor  # noqa: E402
from consents.models import DataCategory, Partner, PartnerKind, Purpose, Sharing  # noqa: E402
from consents.services.access import AccessReport, access_events_ingest  # noqa: E402
from consents.services.consents import consent_grant  # noqa: E402
from consents.services.notices import purpose_version_publish  # noqa: E402
from consents.services.partners import partner_credential_create, partner_subject_ensure  # noqa: E402
from portal.models import User  # noqa: E402

SUBJECTS = 200
TICKS = os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL server process, from /proc (None elsewhere)."""
    if django.db.connection.vendor != "postgresql":
        return None
    with django.db.connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a server on another host or in another PID namespace
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


Usage = tuple[float, float, float | None]  # wall seconds, this process's CPU, PostgreSQL's CPU


def usage() -> Usage:
    return time.perf_counter(), time.process_time(), database_cpu_seconds()


def since(start: Usage) -> Usage:
    end = usage()
    database = None if start[2] is None or end[2] is None else end[2] - start[2]
    return end[0] - start[0], end[1] - start[1], database


def cpu_note(events: int, spent: Usage) -> str:
    """CPU milliseconds per event: the figure that stays stable on a shared machine."""
    note = f"CPU {spent[1] * 1000 / events:.3f} ms/event here"
    return note if spent[2] is None else f"{note} + {spent[2] * 1000 / events:.3f} in PostgreSQL"


def build() -> tuple[Partner, str, list[str]]:
    call_command("migrate", verbosity=0)
    categories = [
        DataCategory.objects.create(
            slug=f"cat-{i}", name=f"Category {i}", translations={"zh-hans": {"name": f"类别 {i}"}}
        )
        for i in range(3)
    ]
    purpose = Purpose.objects.create(slug="offers", name="Offers", legal_basis="consent")
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
    partner = Partner.objects.create(slug="bench", name="Bench", kind=PartnerKind.ADVERTISER, country="DE")
    Sharing.objects.create(partner=partner, purpose=purpose).data_categories.set(categories[:2])
    subjects = []
    for n in range(SUBJECTS):
        user = User.objects.create_user(f"consumer{n}@example.com", None)
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
        subjects.append(partner_subject_ensure(partner=partner, user=user).subject_id)
    credential, secret = partner_credential_create(
        partner=partner, label="bench", scopes=["access:write"], actor=Actor.system("bench")
    )
    basic = base64.b64encode(f"{credential.application.client_id}:{secret}".encode()).decode()
    token = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, headers={"authorization": f"Basic {basic}"}
    )
    return partner, token.json()["access_token"], subjects


def batches(prefix: str, total: int, size: int, subjects: list[str]) -> list[list[dict]]:
    now = timezone.now()
    events = [
        {
            "event_id": f"{prefix}-{n}",
            "subject_id": subjects[n % len(subjects)],
            "purpose": "offers",
            "categories": [f"cat-{n % 2}"],
            "accessed_at": (now - timedelta(seconds=n)).isoformat(),
            "action": "read",
            "detail": "Offer scored",
        }
        for n in range(total)
    ]
    return [events[i : i + size] for i in range(0, total, size)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--background", type=int, default=0)
    parser.add_argument(
        "--connections", type=int, default=4, help="concurrent clients for the wrk phase (0: skip it; default 4)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the wrk phase (default 5)")
    args = parser.parse_args()
    partner, token, subjects = build()
    offers = Purpose.objects.get(slug="offers")
    background_events_load(args.background, partner=partner, purpose=offers, category="cat-0")
    client = Client()
    headers = {"authorization": f"Bearer {token}"}

    bodies = [json.dumps({"events": b}) for b in batches("api", args.events, args.batch, subjects)]
    started = usage()
    for body in bodies:
        response = client.post("/api/v1/access-events", body, content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content[:300]
        assert response.json()["created"] == args.batch
    api = since(started)

    reports = [
        [
            AccessReport(
                event_id=e["event_id"],
                subject_id=e["subject_id"],
                purpose=e["purpose"],
                categories=tuple(e["categories"]),
                accessed_at=timezone.now() - timedelta(seconds=1),
                action=e["action"],
                detail=e["detail"],
            )
            for e in b
        ]
        for b in batches("direct", args.events, args.batch, subjects)
    ]
    started = usage()
    for batch in reports:
        access_events_ingest(partner=partner, reports=batch)
    direct = since(started)

    api_rate, direct_rate = args.events / api[0], args.events / direct[0]
    print(
        f"database: {django.db.connection.vendor}, {args.events:,} events in batches of {args.batch}, "
        f"{stored_events() - 2 * args.events:,} other events stored"
    )
    print(f"  endpoint (full HTTP stack): {api_rate:>9,.0f} events/s ({api[0]:.2f} s; {cpu_note(args.events, api)})")
    direct_note = cpu_note(args.events, direct)
    print(f"  service only (baseline):    {direct_rate:>9,.0f} events/s ({direct[0]:.2f} s; {direct_note})")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  ratio endpoint / baseline:  {api_rate / direct_rate:>9.2f}")
    best = api_rate
    if args.connections:
        concurrent_rate = through_wrk(
            token=token,
            partner=partner,
            subjects=subjects,
            batch=args.batch,
            seconds=args.seconds,
            connections=args.connections,
        )
        print(f"  ratio concurrent / baseline: {concurrent_rate / direct_rate:>8.2f}")
        best = max(best, concurrent_rate)
    print(f"  target: >= 5,000 events/s through the endpoint: {'met' if best >= 5000 else 'MISSED'}")


def through_wrk(
    *, token: str, partner: Partner, subjects: list[str], batch: int, seconds: float, connections: int
) -> float:
    """Events stored per second when ``connections`` clients post batches at once to gunicorn (2 sync workers).

    The in-process loop above is one client in series, so each batch pays the web process's time and
    the database's one after the other. Here wrk (C, one thread) keeps ``connections`` requests in
    flight against the same database, each batch with new event ids, and the rate is what the
    database holds afterwards, not what wrk sent. CPU per event is read from /proc as for the
    consent check (web processes and the PostgreSQL backends they use).
    """
    from django.db import connection
    from wrk import CpuMeter, free_port, gunicorn_start, postgres_backends, wrk_run, wrk_script_bodies

    from audit.models import AccessEvent

    # Enough new batches for 20,000 events/s, so none is sent twice within the run.
    needed = int(20_000 * (seconds + 1) / batch) + 1
    bodies = [json.dumps({"events": b}) for b in batches("wrk", needed * batch, batch, subjects)]
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-wrk-"))
    script = wrk_script_bodies(
        work / "ingest.lua",
        url_path="/api/v1/access-events",
        bodies=bodies,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    warm_up = wrk_script_bodies(
        work / "warm-up.lua",
        url_path="/api/v1/access-events",
        bodies=[json.dumps({"events": b}) for b in batches("warm-up", 40 * batch, batch, subjects)],
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    port = free_port()
    env = {"CONN_MAX_AGE": "600", "LOG_LEVEL": "WARNING"}
    server = gunicorn_start(env, port)
    try:
        url = f"http://127.0.0.1:{port}"
        # Both workers open their database connections (the CPU meter follows the backends it sees).
        wrk_run(url, script=warm_up, seconds=1, connections=connections)
        database_url = os.environ.get("DATABASE_URL", "")
        backends = postgres_backends(database_url) if connection.vendor == "postgresql" else None
        before = AccessEvent.objects.filter(partner=partner, partner_event_id__startswith="wrk-").count()
        meter = CpuMeter([server.pid], backends)
        meter.start()
        result = wrk_run(url, script=script, seconds=seconds, connections=connections)
        use = meter.stop()
        stored = AccessEvent.objects.filter(partner=partner, partner_event_id__startswith="wrk-").count() - before
    finally:
        server.terminate()
        server.wait(timeout=10)
    rate = stored / result.seconds
    print(
        f"  concurrent (wrk, {connections} connections, gunicorn sync x 2): {rate:>7,.0f} events/s stored"
        f" ({result.requests:,} batches in {result.seconds:.1f} s, p95 {result.p95_ms:.0f} ms,"
        f" {result.errors} failed; CPU {use.web_seconds * 1000 / max(stored, 1):.3f} ms/event web"
        f" + {use.database_seconds * 1000 / max(stored, 1):.3f} in PostgreSQL)"
    )
    if result.requests > len(bodies):
        print("  warning: wrk sent some batches twice (their events were duplicates): the rate is understated")
    return rate


if __name__ == "__main__":
    main()
