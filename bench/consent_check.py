"""Benchmark: the consent check against a bare DRF endpoint, 1,000,000 consents, gunicorn sync x 2.

    .venv/bin/python bench/consent_check.py [--duration 5] [--connections 4] [--rounds 4]

Builds 100,000 consumers x 10 purposes = 1,000,000 consents with bulk inserts into a separate
benchmark database (a SQLite file under /tmp/portal-bench, or PostgreSQL when DATABASE_URL is set;
its database name must contain "bench", because the data is replaced), starts gunicorn (sync,
2 workers, persistent database connections) on a free loopback port, and measures in the same run:

- ``GET /api/v1/ping`` (bare DRF, no authentication) and
  ``GET /api/v1/subjects/{id}/consents/{purpose}`` (OAuth token, scopes, throttle, partner
  scoping) for random subjects and purposes: requests per second, p95, CPU per request, and the
  ratio of CPU per request (target >= 0.60),
- the latency of ``POST /api/v1/consents/check`` with 1,000 pairs (target <= 100 ms), measured
  at the client over loopback, so an upper bound of the server time.

The load comes from wrk (a C load generator; bench/wrk.py installs Debian's package when missing),
not from Python clients that would take the server's CPU. Ping and check run in alternating phases,
and beside requests per second the script reads from /proc the CPU the web processes and the
PostgreSQL backends spent per request: the target (check >= 0.60 of ping) is the ratio of those,
which stays put on a shared machine while the rates move with the neighbours. Redis serves as
the cache (throttle counters) when REDIS_URL is set; otherwise a private redis-server is started
on a free port if one is installed, else the file cache is used.

PostgreSQL: tune the server as for production with the data in memory (shared_buffers large enough,
random_page_cost about 1.1 as on SSDs). With the default random_page_cost of 4, the planner reads
the whole pairwise-id table for a bulk check instead of probing its index, about 2.5 times slower.
"""

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.wrk import CpuMeter, Phase, free_port, gunicorn_start, postgres_backends, wrk_run, wrk_script

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/portal-bench"))  # noqa: S108 (a scratch database, by design)
SUBJECTS = 100_000
PURPOSES = 10
SAMPLE_SUBJECTS = 20_000


def prepare_environment(procs: list[subprocess.Popen]) -> dict[str, str]:
    """The environment both this process and the server run with."""
    WORK.mkdir(parents=True, exist_ok=True)
    env = {
        "PORTAL_ENV": "development",
        "DEBUG": "0",
        "PORTAL_VAR_DIR": str(WORK / "var"),
        "CONN_MAX_AGE": "600",
        "PARTNER_API_RATE": "100000000/minute",
        "LOG_LEVEL": "WARNING",
    }
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url:
        name = urlparse(database_url).path.lstrip("/")
        if "bench" not in name:
            sys.exit(f"DATABASE_URL must name a database for benchmarks only (its name must contain 'bench'): {name}")
        env["DATABASE_URL"] = database_url
    else:
        env["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    elif shutil.which("redis-server"):
        port = free_port()
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    os.environ.update(env)
    return env


def build_data() -> tuple[str, str, list[str], list[str]]:
    """Fill the benchmark database once; returns client id, secret, sample subject ids, purpose slugs."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()

    from django.core.management import call_command
    from django.db import connection

    from audit.services import Actor
    from consents.models import Consent, Partner, PartnerSubject
    from consents.services.partners import partner_credential_create

    call_command("migrate", verbosity=0)
    partner, _created = Partner.objects.get_or_create(
        slug="bench-partner", defaults={"name": "Bench Partner", "kind": "service_provider", "country": "DE"}
    )
    slugs = [f"bench-purpose-{n}" for n in range(PURPOSES)]
    if Consent.objects.count() < SUBJECTS * PURPOSES:
        started = time.perf_counter()
        print(f"building {SUBJECTS:,} consumers x {PURPOSES} purposes ...", flush=True)
        _fill(partner, slugs)
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    credential, secret = partner_credential_create(
        partner=partner,
        label=f"bench {datetime.now(UTC):%H:%M:%S}",
        scopes=["consents:read"],
        actor=Actor.system("bench"),
    )
    subject_ids = list(
        PartnerSubject.objects.filter(partner=partner)
        .order_by("?")
        .values_list("subject_id", flat=True)[:SAMPLE_SUBJECTS]
    )
    connection.close()
    return credential.application.client_id, secret, subject_ids, slugs


def _fill(partner, slugs: list[str]) -> None:
    from django.db import connection, transaction

    from audit.services import Actor
    from consents.models import Consent, DataCategory, PartnerSubject, Purpose, Sharing, subject_id_generate
    from consents.services.notices import purpose_version_publish
    from portal.models import User

    category, _created = DataCategory.objects.get_or_create(
        slug="bench-data", defaults={"name": "Bench data", "translations": {"zh-hans": {"name": "基准数据"}}}
    )
    purposes = []
    for position, slug in enumerate(slugs):
        purpose, _created = Purpose.objects.get_or_create(
            slug=slug, defaults={"name": slug.replace("-", " ").title(), "legal_basis": "consent", "position": position}
        )
        if purpose.current_version_id is None:
            purpose_version_publish(
                purpose=purpose,
                description="Benchmark purpose.",
                retention="One year",
                data_categories=[category],
                material=False,
                change_summary="First version",
                actor=Actor.system("bench"),
                translations={
                    "zh-hans": {
                        "name": "基准用途",
                        "description": "基准测试用途。",
                        "retention": "一年",
                        "change_summary": "第一版",
                    }
                },
            )
            purpose.refresh_from_db()
        Sharing.objects.get_or_create(partner=partner, purpose=purpose)
        purposes.append(purpose)

    adapt = connection.ops.adapt_datetimefield_value
    now = datetime.now(UTC)
    rng = random.Random(42)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Consent._meta.db_table}")  # noqa: S608
            cursor.execute(f"DELETE FROM {PartnerSubject._meta.db_table} WHERE partner_id = %s", [partner.pk])  # noqa: S608
        existing = User.objects.filter(email__startswith="bench-").count()
        users = [
            (
                "!",
                False,
                "",
                "",
                False,
                True,
                adapt(now),
                f"bench-{n}@example.com",
                "gdpr",
                "",
                "",
                True,
                True,
                False,
            )
            for n in range(existing, SUBJECTS)
        ]
        _insert(
            User,
            "password, is_superuser, first_name, last_name, is_staff, is_active, date_joined, email, jurisdiction,"
            " language, time_zone, notify_material_changes, notify_flagged_access, monthly_digest",
            users,
        )
        user_ids = list(User.objects.filter(email__startswith="bench-").values_list("pk", flat=True)[:SUBJECTS])
        _insert(
            PartnerSubject,
            "partner_id, user_id, subject_id, created_at",
            [(partner.pk, user_id, subject_id_generate(), adapt(now)) for user_id in user_ids],
        )
        rows = []
        for user_id in user_ids:
            for purpose in purposes:
                granted_at = now - timedelta(days=rng.randint(1, 700))
                roll = rng.random()
                status, revoked_at, expires_at, reason, duration, period = "granted", None, None, "", "persistent", None
                if roll < 0.20:
                    status, revoked_at, reason = "revoked", granted_at + timedelta(days=1), "user_action"
                elif roll < 0.25:
                    status = "reconsent_required"
                elif roll < 0.40:
                    duration, period = "time_bound", 365
                    expires_at = granted_at + timedelta(days=period)
                rows.append(
                    (
                        user_id,
                        purpose.pk,
                        purpose.current_version_id,
                        status,
                        "web",
                        duration,
                        period,
                        adapt(granted_at),
                        adapt(revoked_at) if revoked_at else None,
                        adapt(expires_at) if expires_at else None,
                        reason,
                        "",
                        "consumer",
                        adapt(granted_at),
                    )
                )
        _insert(
            Consent,
            "user_id, purpose_id, version_id, status, method, duration_type, period_days, granted_at, revoked_at,"
            " expires_at, revocation_reason, revocation_note, changed_by, updated_at",
            rows,
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _insert(model: Any, columns: str, rows: list[tuple]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany in one transaction on SQLite.

    Columns not given get their field's default, so a field added to the model later does not
    break the benchmark's raw insert.
    """
    from django.db import connection
    from django.db.models import NOT_PROVIDED

    given = [name.strip() for name in columns.split(",")]
    rest = [
        field
        for field in model._meta.concrete_fields
        if field.column not in given and not field.primary_key and field.db_default is NOT_PROVIDED
        if field.has_default() or not field.null
    ]
    defaults = tuple(field.get_db_prep_save(field.get_default(), connection) for field in rest)
    table = model._meta.db_table
    columns = ", ".join([*given, *(field.column for field in rest)])
    rows = [row + defaults for row in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(rows[0])) if rows else ""
        for start in range(0, len(rows), 50_000):
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
                rows[start : start + 50_000],
            )


def fetch_token(port: int, client_id: str, secret: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    conn.request(
        "POST",
        "/oauth/token/",
        body="grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    response = conn.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        sys.exit(f"token request failed: {response.status} {body}")
    return body["access_token"]


def measure(
    *,
    url: str,
    token: str,
    subjects: list[str],
    slugs: list[str],
    duration: float,
    connections: int,
    rounds: int,
    meter: CpuMeter,
) -> list[tuple[Phase, Phase]]:
    """Ping and check under wrk, one after the other in each round; (ping, check) per round.

    Alternating short phases lets both endpoints see much the same background load; the CPU per
    request, unlike the rate, hardly depends on it.
    """
    rng = random.Random(3)
    pairs = [f"/api/v1/subjects/{rng.choice(subjects)}/consents/{rng.choice(slugs)}" for _ in range(10_000)]
    scripts = {
        "ping": wrk_script(WORK / "ping.lua", paths=["/api/v1/ping"]),
        "check": wrk_script(WORK / "check.lua", paths=pairs, headers={"Authorization": f"Bearer {token}"}),
    }
    for script in scripts.values():  # warm-up: connections, caches, the database's buffers
        wrk_run(url, script=script, seconds=2, connections=connections)

    def phase(name: str) -> Phase:
        meter.start()
        result = wrk_run(url, script=scripts[name], seconds=duration, connections=connections)
        use = meter.stop()
        if result.errors:
            print(f"  warning: {result.errors} {name} requests failed or were not 2xx", flush=True)
        return Phase(result, use)

    return [(phase("ping"), phase("check")) for _ in range(rounds)]


def measure_bulk(*, port: int, token: str, subjects: list[str], slugs: list[str], runs: int = 30) -> list[float]:
    rng = random.Random(7)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings = []
    for run in range(runs + 3):
        items = [{"subject_id": rng.choice(subjects), "purpose": rng.choice(slugs)} for _ in range(1000)]
        body = json.dumps({"items": items})
        started = time.perf_counter()
        conn.request(
            "POST",
            "/api/v1/consents/check",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            sys.exit(f"bulk check failed: {response.status} {payload[:300]!r}")
        if run >= 3:
            timings.append(elapsed)
        if response.getheader("connection", "").lower() == "close":
            conn.close()
    results = json.loads(payload)["results"]
    assert len(results) == 1000
    assert all(r["status"] != "not_found" for r in results)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    args = parser.parse_args()

    procs: list[subprocess.Popen] = []
    try:
        env = prepare_environment(procs)
        engine = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
        print(f"database: {engine}; cache: {'Redis' if env.get('REDIS_URL') else 'file'}", flush=True)
        client_id, secret, subjects, slugs = build_data()
        port = free_port()
        server = gunicorn_start(env, port)
        procs.append(server)
        token = fetch_token(port, client_id, secret)

        database_pids = postgres_backends(env["DATABASE_URL"]) if engine == "PostgreSQL" else None
        meter = CpuMeter([server.pid], database_pids)
        rounds = measure(
            url=f"http://127.0.0.1:{port}",
            token=token,
            subjects=subjects,
            slugs=slugs,
            duration=args.duration,
            connections=args.connections,
            rounds=args.rounds,
            meter=meter,
        )
        for number, (ping, check) in enumerate(rounds, start=1):
            print(
                f"round {number}: ping {ping.result.rate:,.0f} req/s {ping.cpu_ms:.2f} ms CPU,"
                f" check {check.result.rate:,.0f} req/s {check.cpu_ms:.2f} ms CPU"
                f" (web {check.web_ms:.2f} + database {check.database_ms:.2f}),"
                f" ratio {ping.cpu_ms / check.cpu_ms:.2f} by CPU, {check.result.rate / ping.result.rate:.2f} by rate",
                flush=True,
            )
        timings = measure_bulk(port=port, token=token, subjects=subjects, slugs=slugs)

        def median(values: list[float]) -> float:
            return statistics.median(values)

        pings, checks = [r[0] for r in rounds], [r[1] for r in rounds]
        cpu_ratios = [p.cpu_ms / c.cpu_ms for p, c in rounds]
        rate_ratios = [c.result.rate / p.result.rate for p, c in rounds]
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        database_note = "database in the web processes" if engine == "SQLite" else "web + PostgreSQL backends"
        print()
        print(
            f"{SUBJECTS * PURPOSES:,} consents on {engine}, gunicorn sync x 2, wrk with {args.connections}"
            f" connections, {args.rounds} rounds of {args.duration:.0f} s per endpoint (medians)"
        )
        print(f"{'':48}{'req/s':>9}{'p95 ms':>9}{'CPU ms/req':>12}  ({database_note})")
        for label, phases in (
            ("bare DRF endpoint (GET /api/v1/ping)", pings),
            ("consent check (GET .../consents/{purpose})", checks),
        ):
            print(
                f"{label:48}{median([p.result.rate for p in phases]):9,.0f}"
                f"{median([p.result.p95_ms for p in phases]):9.1f}{median([p.cpu_ms for p in phases]):12.2f}"
                f"  (web {median([p.web_ms for p in phases]):.2f}"
                f" + database {median([p.database_ms for p in phases]):.2f})"
            )
        print(
            f"ratio by CPU per request:                       {median(cpu_ratios):8.2f}   (target >= 0.60;"
            f" per round: {', '.join(f'{r:.2f}' for r in cpu_ratios)})"
        )
        print(
            f"ratio by requests per second:                   {median(rate_ratios):8.2f}   (shared machine: moves"
            f" with the neighbours; per round: {', '.join(f'{r:.2f}' for r in rate_ratios)})"
        )
        print(
            f"bulk check of 1,000 pairs:                      {statistics.median(timings):8.1f} ms median,"
            f" {p95:.1f} ms p95   (target <= 100 ms)"
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
