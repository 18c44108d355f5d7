"""Server CPU and latency of token introspection for a connected app, against a bare endpoint in the same run.

Usage: .venv/bin/python bench/introspection.py [--duration 5] [--rounds 4] [--connections 2]
Uses a throwaway SQLite database unless DATABASE_URL is set (then that database is migrated and
used; the bench adds its own uniquely named rows, so a scratch database is best). It connects one
consumer to one app through the real flow (PAR, consent screen, code with PKCE, token), starts
gunicorn (sync, 2 workers, persistent database connections) on a free loopback port and drives it
with wrk (bench/wrk.py), as the other HTTP benchmarks do: ``POST /oauth/introspect/`` with the
app's own client credentials and a form body, as RFC 7662 clients send it, against
``GET /api/v1/ping`` (bare DRF, no authentication), alternating in rounds so that both see the
same background load on a shared machine. Prints requests per second, p95 at the client and the
server's CPU per request (web processes and, on PostgreSQL, their backends, read from /proc) of
each, and the ratios; targets: ratio >= 0.5, p95 <= 10 ms. On PostgreSQL a second server runs
introspection without prepared statements (``DATABASE_PREPARED_STATEMENTS=0``), to show what they save.

The OAuth endpoints' rate limits are raised for the run so that no request is refused; the
limiter still counts every request, so its cost is part of the figure.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="bench-introspection-"))
os.environ.setdefault("PORTAL_ENV", "development")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.update(
    dict.fromkeys(
        (
            "OAUTH_TOKEN_RATE_PER_CLIENT",
            "OAUTH_TOKEN_RATE_PER_IP",
            "OAUTH_INTROSPECT_RATE_PER_CLIENT",
            "OAUTH_INTROSPECT_RATE_PER_IP",
        ),
        "100000000/minute",
    )
)

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.services import Actor  # noqa: E402
from bench.wrk import CpuMeter, Phase, free_port, gunicorn_start, postgres_backends, wrk_run, wrk_script  # noqa: E402
from consents.models import DataCategory, Partner, PartnerKind, Purpose  # noqa: E402
from consents.services.apps import connected_app_create  # noqa: E402
from consents.services.notices import purpose_version_publish  # noqa: E402
from portal.models import User  # noqa: E402

REDIRECT = "https://bench.example.com/callback"
FORM = "application/x-www-form-urlencoded"


def build() -> tuple[str, str, str]:
    """One app, one consumer connected through the real flow; returns client id, secret and access token."""
    call_command("migrate", verbosity=0)
    run = uuid.uuid4().hex[:8]
    categories = [
        DataCategory.objects.create(
            slug=f"bench-{run}-{i}", name=f"Category {i}", translations={"zh-hans": {"name": f"类别 {i}"}}
        )
        for i in range(3)
    ]
    purpose = Purpose.objects.create(slug=f"bench-{run}", name="Bench purpose", legal_basis="consent")
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
    partner = Partner.objects.create(
        slug=f"bench-{run}", name="Bench partner", kind=PartnerKind.ADVERTISER, country="DE"
    )
    app, secret = connected_app_create(
        partner=partner,
        name="Bench app",
        redirect_uris=[REDIRECT],
        purposes=[purpose],
        data_categories=categories,
        max_duration_days=90,
        max_lookback_days=365,
        actor=Actor.system("bench"),
    )
    client_id = app.application.client_id
    basic = {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    details = {
        "type": "portal_data_access",
        "purpose": purpose.slug,
        "data_categories": [
            {"category": categories[0].slug, "required": True, "reason": "Bench."},
            {"category": categories[1].slug},
        ],
        "duration": {"type": "time_bound", "period_days": 90},
        "lookback_days": 365,
    }
    client = Client()
    par = client.post(
        "/connect/par",
        {
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "bench",
            "authorization_details": json.dumps([details]),
        },
        headers=basic,
    )
    assert par.status_code == 201, par.content
    client.force_login(User.objects.create_user(f"bench-{run}@example.com", "bench-password-2026"))
    until = (timezone.localdate() + timedelta(days=30)).isoformat()
    approved = client.post(
        f"/connect/authorize?client_id={client_id}&request_uri={par.json()['request_uri']}",
        {"decision": "approve", "duration": "time_bound", "until": until, "optional_categories": [categories[1].slug]},
    )
    assert approved.status_code == 302, approved.content
    code = approved["Location"].split("code=")[1].split("&")[0]
    token = Client().post(
        "/oauth/token/",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers=basic,
    )
    assert token.status_code == 200, token.content
    return client_id, secret, token.json()["access_token"]


def measure(
    servers: dict[str, tuple[str, CpuMeter]], scripts: dict[str, Path], *, duration: float, connections: int
) -> dict[str, Phase]:
    """One round: each run under wrk in turn, on its own server."""
    phases = {}
    for name, script in scripts.items():
        url, meter = servers[name]
        meter.start()
        result = wrk_run(url, script=script, seconds=duration, connections=connections)
        use = meter.stop()
        if result.errors:
            print(f"  warning: {result.errors} {name} requests failed or were not 2xx", flush=True)
        phases[name] = Phase(result, use)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round and endpoint (default 5)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument(
        "--connections", type=int, default=2, help="wrk connections (default 2, one per gunicorn worker: no queueing)"
    )
    args = parser.parse_args()
    client_id, secret, token = build()
    postgres = connection.vendor == "postgresql"
    connection.close()
    env = {"PORTAL_ENV": os.environ["PORTAL_ENV"], "DEBUG": "0", "CONN_MAX_AGE": "600", "LOG_LEVEL": "WARNING"}
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    work = Path(os.environ["PORTAL_VAR_DIR"])
    scripts = {
        "ping": wrk_script(work / "ping.lua", paths=["/api/v1/ping"]),
        "introspect": wrk_script(
            work / "introspect.lua",
            paths=["/oauth/introspect/"],
            method="POST",
            headers={"Authorization": basic, "Content-Type": FORM},
            body=urlencode({"token": token}),
        ),
    }
    variants = {"ping": env, "introspect": env}
    if postgres:
        scripts["unprepared"] = scripts["introspect"]
        variants["unprepared"] = env | {"DATABASE_PREPARED_STATEMENTS": "0"}
    database_pids = postgres_backends(os.environ["DATABASE_URL"]) if postgres else None
    servers: dict[str, tuple[str, CpuMeter]] = {}
    processes: list[subprocess.Popen] = []
    try:
        started: dict[str, tuple[str, CpuMeter]] = {}
        for name, variant_env in variants.items():
            key = json.dumps(variant_env, sort_keys=True)
            if key not in started:
                port = free_port()
                processes.append(gunicorn_start(variant_env, port))
                # The meters count every backend of the bench's database: the other server's are idle.
                started[key] = (f"http://127.0.0.1:{port}", CpuMeter([processes[-1].pid], database_pids))
            servers[name] = started[key]
        answer = wrk_run(servers["introspect"][0], script=scripts["introspect"], seconds=1, connections=1)
        if answer.errors:
            sys.exit("introspection did not answer 200; is the token still valid?")
        measure(servers, scripts, duration=2, connections=args.connections)  # warm-up: connections, plans
        rounds = [
            measure(servers, scripts, duration=args.duration, connections=args.connections) for _ in range(args.rounds)
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)

    def median(values: list[float]) -> float:
        return statistics.median(values)

    engine = "PostgreSQL" if postgres else "SQLite"
    database_note = "web + PostgreSQL backends" if postgres else "database in the web processes"
    labels = {"ping": "GET /api/v1/ping", "introspect": "POST /oauth/introspect/", "unprepared": "  not prepared"}
    print(
        f"{engine}, gunicorn sync x 2, wrk with {args.connections} connections,"
        f" {args.rounds} rounds of {args.duration:.0f} s per endpoint (medians)"
    )
    print(f"{'endpoint':<28}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'CPU ms/req':>12}  ({database_note})")
    for name in scripts:
        phases = [r[name] for r in rounds]
        print(
            f"{labels[name]:<28}{median([p.result.rate for p in phases]):8,.0f}"
            f"{median([p.result.p50_ms for p in phases]):8.2f}{median([p.result.p95_ms for p in phases]):8.2f}"
            f"{median([p.cpu_ms for p in phases]):12.2f}  (web {median([p.web_ms for p in phases]):.2f}"
            f" + database {median([p.database_ms for p in phases]):.2f})"
        )
    for name in scripts:
        if name == "ping":
            continue
        by_cpu = [r["ping"].cpu_ms / r[name].cpu_ms for r in rounds]
        by_rate = [r[name].result.rate / r["ping"].result.rate for r in rounds]
        print(
            f"ratio {name} / ping: {median(by_cpu):.2f} by CPU per request (per round:"
            f" {', '.join(f'{r:.2f}' for r in by_cpu)}), {median(by_rate):.2f} by requests per second"
        )
    print(
        "target: ratio >= 0.5 by CPU per request, introspection p95 <= 10 ms (wrk's p95 with one connection per"
        " worker: the server's time plus the loopback, an upper bound of the server's)"
    )


if __name__ == "__main__":
    main()
