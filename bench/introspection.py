"""Server time of token introspection for a connected app, against a bare endpoint in the same run.

Usage: .venv/bin/python bench/introspection.py [--requests 2000] [--rounds 10]
Uses a throwaway SQLite database unless DATABASE_URL is set (then that database is migrated and
used; the bench adds its own uniquely named rows, so a scratch database is best). It connects one
consumer to one app through the real flow (PAR, consent screen, code with PKCE, token), then
measures in-process (Django's test client: server time, no network) ``POST /oauth/introspect/``
with the app's own client credentials against ``GET /api/v1/ping`` (bare DRF, no authentication).
The two alternate in rounds so that both see the same background load on a shared machine.
Prints requests per second, p50/p95 and CPU per request (web process, and on PostgreSQL its
backend) of each, and the ratios; targets: ratio >= 0.5, p95 <= 10 ms. On PostgreSQL it also
measures introspection without prepared statements and without Django's per-request connection
health check, to show what each saves.

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
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
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
from django.test import Client, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.services import Actor  # noqa: E402
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


def backend_cpu() -> float:
    """CPU seconds the PostgreSQL backend serving this process's connection has used; 0 on SQLite.

    Read from /proc, so it needs the database on this machine; the planning and execution time
    that the web process's own CPU figure leaves out.
    """
    if connection.vendor != "postgresql":
        return 0.0
    connection.ensure_connection()
    fields = Path(f"/proc/{connection.connection.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(call: Callable[[], Any], requests: int, samples: list[float], cpu: list[float]) -> tuple[float, float]:
    """Run ``requests`` calls, append each one's wall and CPU milliseconds; returns the wall seconds in
    all and the database backend's CPU seconds in all.

    CPU time is this process's (server and test client, no network): on a shared machine it is the
    steadier figure, since other processes' load stretches wall time but not CPU time.
    """
    started, started_db = time.perf_counter(), backend_cpu()
    for _ in range(requests):
        start, start_cpu = time.perf_counter(), time.process_time()
        response = call()
        cpu.append((time.process_time() - start_cpu) * 1000)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.content
    return time.perf_counter() - started, backend_cpu() - started_db


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


@contextmanager
def variant(*, prepared: bool = True, health_checks: bool = True) -> Iterator[None]:
    """Settings of one measured variant: prepared statements, and Django's per-request health check."""
    connection.ensure_connection()
    enabled = connection.health_check_enabled  # type: ignore[attr-defined]
    connection.health_check_enabled = health_checks and enabled  # type: ignore[attr-defined]
    try:
        with override_settings(DATABASE_PREPARED_STATEMENTS=prepared):
            yield
    finally:
        connection.health_check_enabled = enabled  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint, in all")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client_id, secret, token = build()
    client = Client()
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    body = urlencode({"token": token})  # form-encoded, as RFC 7662 clients send it

    def ping() -> Any:
        return client.get("/api/v1/ping")

    def introspect() -> Any:
        response = client.post("/oauth/introspect/", body, content_type=FORM, HTTP_AUTHORIZATION=basic)
        assert response.json()["active"] is True, response.content
        return response

    # The deployed configuration (prepared statements, health checks) and, on PostgreSQL, what each
    # of the two saves, all alternating in the same rounds.
    runs: dict[str, tuple[str, Callable[[], Any], dict[str, bool]]] = {
        "ping": ("GET /api/v1/ping", ping, {}),
        "introspect": ("POST /oauth/introspect/", introspect, {}),
    }
    if connection.vendor == "postgresql":
        runs["unprepared"] = ("  not prepared", introspect, {"prepared": False})
        runs["no-health-check"] = ("  no health check", introspect, {"health_checks": False})
    for _path, call, options in runs.values():
        with variant(**options):
            timed(call, 50, [], [])  # warm up: connections, caches, the client secret check, plans
    per_round = max(1, args.requests // args.rounds)
    results: dict[str, tuple[list[float], list[float], list[float], list[float]]] = {
        name: ([], [], [], []) for name in runs
    }
    for _ in range(args.rounds):
        for name, (_path, call, options) in runs.items():
            samples, cpu, seconds, db_seconds = results[name]
            with variant(**options):
                wall, db = timed(call, per_round, samples, cpu)
            seconds.append(wall)
            db_seconds.append(db)
    print(f"database: {connection.vendor}; {per_round * args.rounds} requests per endpoint in {args.rounds} rounds")
    print(
        f"{'endpoint':<28}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'CPU ms':>8}{'CPU p95':>8}{'DB CPU':>8}{'CPU all':>8}"
    )
    rates, cpu_all = {}, {}
    for name, (path, _call, _options) in runs.items():
        samples, cpu, seconds, db_seconds = results[name]
        rates[name] = len(samples) / sum(seconds)
        db_ms = sum(db_seconds) * 1000 / len(samples)
        cpu_all[name] = statistics.mean(cpu) + db_ms
        print(
            f"{path:<28}{rates[name]:>8.0f}{statistics.median(samples):>8.2f}{p95(samples):>8.2f}"
            f"{statistics.mean(cpu):>8.2f}{p95(cpu):>8.2f}{db_ms:>8.2f}{cpu_all[name]:>8.2f}"
        )
    for name in runs:
        if name != "ping":
            print(
                f"ratio {name} / ping: {rates[name] / rates['ping']:.2f} (req/s),"
                f" {cpu_all['ping'] / cpu_all[name]:.2f} (CPU per request, web + database)"
            )
    print("target: ratio >= 0.5 and introspection p95 <= 10 ms (wall time; CPU p95 where other load stretches it)")
    if connection.vendor == "postgresql":
        print("DB CPU: the PostgreSQL backend's CPU per request from /proc (10 ms clock ticks, summed per round)")


if __name__ == "__main__":
    main()
