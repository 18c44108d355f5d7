"""Load test: 50 consumers and 4 partners at once against the production-shaped run, with locust.

    .venv/bin/python bench/load.py [--duration 120] [--consumers 50] [--partners 4] [--url URL]

Without ``--url`` it starts ``bin/run-prod`` (PostgreSQL, Redis, gunicorn with 2 workers, the two
Celery workers and beat, production settings) on a free loopback port, with
``TRUSTED_PROXY_COUNT=1`` as behind a load balancer, so that each simulated client's
``X-Forwarded-For`` address is its own for the login rate limit. It then prepares its data through
the services, in a process with the run's database and secrets: consumer accounts
``load-consumer-N@example.com`` with passwords generated for this run, partners ``load-partner-N``
sharing every consent purpose of the catalogue that ``seed_demo`` made (``bin/run-prod`` seeds
it), each with a new API credential (the previous run's are revoked) and a pairwise id per
consumer. Passwords and client secrets are
only in a 0600 file under a temporary directory, deleted at the end.

Then ``locust --headless`` runs ``bench/load_locustfile.py``: consumers log in through allauth
(CSRF included), read the dashboard, consents, activity, access and receipts pages, grant and
withdraw consents; partners take a token, check consent, ingest access-event batches of 50 and
read their event feed. The sign-in phase (until every consumer has signed in and every partner has
its token) is reported apart; then the statistics restart and ``--duration`` seconds are measured.
At the end (or on Ctrl-C) it stops locust and the run, and prints requests, failures,
p50/p95/p99 per endpoint group, the error rate (sign-in phase included) and PASS/MISS for the
targets: consent check p95 < 200 ms, error rate < 0.1 %.

With ``--url`` it attaches to a portal already running there and prepares the data with this
process's environment, which must name the same database and ``CLIENT_SECRET_HMAC_KEY`` as the
server (``DATABASE_URL``, the secrets, ``PORTAL_ENV``); without ``TRUSTED_PROXY_COUNT=1`` on that
server, more than 30 consumer logins a minute are refused by allauth's per-address limit.
"""

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "load_locustfile.py"
PROD = ROOT / "var" / "prod"
SECRET_NAMES = (
    "SECRET_KEY",
    "AUDIT_HMAC_KEY",
    "RECEIPT_SIGNING_KEY",
    "CLIENT_SECRET_HMAC_KEY",
    "WEBHOOK_SECRET_KEY",
    "METRICS_TOKEN",
)
CHECK_GROUP = "partner: consent check"
TARGET_CHECK_P95_MS = 200
TARGET_ERROR_RATE = 0.001
CREDENTIAL_LABEL = "load bench"
BANNER = re.compile(r"PostgreSQL 127\.0\.0\.1:(\d+), Redis 127\.0\.0\.1:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=120, help="seconds of load (default 120)")
    parser.add_argument("--consumers", type=int, default=50, help="concurrent consumers (default 50)")
    parser.add_argument("--partners", type=int, default=4, help="concurrent partners (default 4)")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users started per second (default 5)")
    parser.add_argument("--url", help="attach to a portal running at this URL instead of starting bin/run-prod")
    parser.add_argument("--start-timeout", type=int, default=600, help="seconds to wait for bin/run-prod")
    # Internal: the data preparation, run in a child process with the run's environment.
    parser.add_argument("--prepare-into", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare(path: Path, consumers: int, partners: int) -> None:
    """Create or refresh the load accounts and credentials; write them (with secrets) to ``path``."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()

    from allauth.account.models import EmailAddress
    from django.db import transaction

    from audit.services import Actor
    from consents.models import Partner, PartnerCredential, PartnerKind, Purpose, Sharing
    from consents.services.partners import partner_credential_create, partner_credential_revoke, partner_subject_ensure
    from portal.models import User

    actor = Actor.system("load-bench")
    purposes = [
        purpose
        for purpose in Purpose.objects.filter(current_version__isnull=False).select_related("current_version")
        if not purpose.is_essential
    ]
    if not purposes:
        sys.exit("No published consent purpose: run seed_demo (bin/run-prod does on an empty database).")
    data: dict = {"consumers": [], "purposes": [p.slug for p in purposes], "partners": []}
    users = []
    with transaction.atomic():
        for n in range(consumers):
            password = secrets.token_urlsafe(18)
            user, _created = User.objects.get_or_create(
                email=f"load-consumer-{n}@example.com", defaults={"language": "en", "time_zone": "Europe/Berlin"}
            )
            # One hash per account (seed_demo's helper checks the old password first: a second one),
            # PBKDF2 at production strength being most of the preparation's time.
            user.set_password(password)
            user.save(update_fields=["password"])
            EmailAddress.objects.update_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )
            users.append(user)
            data["consumers"].append({"email": user.email, "password": password})
        for n in range(partners):
            partner, _created = Partner.objects.get_or_create(
                slug=f"load-partner-{n}",
                defaults={"name": f"Load Partner {n}", "kind": PartnerKind.SERVICE_PROVIDER, "country": "DE"},
            )
            categories = {}
            for purpose in purposes:
                sharing, _created = Sharing.objects.get_or_create(partner=partner, purpose=purpose)
                slugs = list(purpose.current_version.data_categories.values_list("slug", flat=True))
                if not sharing.data_categories.exists():
                    sharing.data_categories.set(purpose.current_version.data_categories.all())
                if slugs:
                    categories[purpose.slug] = slugs
            for old in PartnerCredential.objects.filter(
                partner=partner, label=CREDENTIAL_LABEL, revoked_at__isnull=True
            ):
                partner_credential_revoke(credential=old, actor=actor)
            credential, secret = partner_credential_create(
                partner=partner,
                label=CREDENTIAL_LABEL,
                scopes=["consents:read", "events:read", "access:write", "acks:write"],
                actor=actor,
            )
            data["partners"].append(
                {
                    "client_id": credential.application.client_id,
                    "client_secret": secret,
                    "subjects": [partner_subject_ensure(partner=partner, user=user).subject_id for user in users],
                    "categories": categories,
                }
            )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)


def run_prod_spawn(port: int, log_path: Path) -> subprocess.Popen:
    """Start bin/run-prod in the background, its output in ``log_path``."""
    env = {**os.environ, "PORT": str(port), "PY": sys.executable, "TRUSTED_PROXY_COUNT": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting bin/run-prod on port {port} (log: {log_path}) ...", flush=True)
    with log_path.open("w") as log:
        # Its own session: Ctrl-C here reaches this script only, which then stops the run in order.
        return subprocess.Popen(
            ["bash", str(ROOT / "bin" / "run-prod")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_prod_wait(process: subprocess.Popen, port: int, log_path: Path, timeout: int) -> dict[str, str]:
    """Wait until the run answers /readyz; returns the environment its Django processes run with."""
    deadline = time.monotonic() + timeout
    ports = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bin/run-prod exited with status {process.returncode}; see {log_path}")
        if ports is None:
            ports = BANNER.search(log_path.read_text(errors="replace"))
        if ports is not None and _ready(f"http://127.0.0.1:{port}"):
            break
        time.sleep(1)
    else:
        sys.exit(f"bin/run-prod was not ready after {timeout} s; see {log_path}")
    return {
        **os.environ,
        "PORTAL_ENV": "production",
        "PORTAL_VAR_DIR": str(PROD / "portal"),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{ports.group(1)}/portal",
        "REDIS_URL": f"redis://127.0.0.1:{ports.group(2)}/0",
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "SITE_URL": f"http://localhost:{port}",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        **{f"{name}_FILE": str(PROD / "secrets" / name) for name in SECRET_NAMES},
    }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:  # noqa: S310 (loopback URL we built)
            return response.status == 200
    except OSError:
        return False


def run_prod_stop(process: subprocess.Popen) -> None:
    """SIGTERM to bin/run-prod, whose trap stops its processes and PostgreSQL; SIGKILL what is left after 60 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_locust(args: argparse.Namespace, url: str, data_file: Path, csv_prefix: Path) -> None:
    env = {
        **os.environ,
        "LOAD_DATA_FILE": str(data_file),
        "LOAD_CONSUMERS": str(args.consumers),
        "LOAD_PARTNERS": str(args.partners),
        "LOAD_DURATION": str(args.duration),
        "LOAD_WARMUP_FILE": str(csv_prefix.with_name("warmup.json")),
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--users",
        str(args.consumers + args.partners),
        "--spawn-rate",
        str(args.spawn_rate),
        # The locustfile ends the run after the measured window; this only bounds a stuck sign-in phase.
        "--run-time",
        f"{args.duration + 660}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    # Its own summary would repeat the figures report() prints; warnings (stderr) still show.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        process.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to locust too; let it write its statistics before going on.
        process.wait(timeout=30)
        raise


def report(csv_prefix: Path, duration: int, load_before: tuple[float, float, float]) -> bool:
    """Print the figures from locust's CSV statistics; True when both targets are met."""
    stats_file = Path(f"{csv_prefix}_stats.csv")
    if not stats_file.exists():
        print("locust wrote no statistics")
        return False
    with stats_file.open() as handle:
        rows = list(csv.DictReader(handle))
    warmup_file = csv_prefix.with_name("warmup.json")
    warmup = json.loads(warmup_file.read_text()) if warmup_file.exists() else {"seconds": 0, "groups": {}, "errors": []}
    load_after = os.getloadavg()
    print("")
    print(f"load test: {duration} s; machine: {os.cpu_count()} cores, load average {_load(load_before)} before,")
    print(f"           {_load(load_after)} after (the other sessions on this machine included)")
    print(f"sign-in phase: {warmup['seconds']} s until every user had signed in or had its token (apart)")
    print(f"{'endpoint group':<28} {'requests':>9} {'failures':>9} {'p50 ms':>7} {'p95 ms':>7}")
    for name, group in warmup["groups"].items():
        print(f"{name:<28} {group['requests']:>9,} {group['failures']:>9,} {group['p50']:>7.0f} {group['p95']:>7.0f}")
    for error in warmup["errors"]:
        print(f"  {error}")
    print(f"measured window: {duration} s")
    print(
        f"{'endpoint group':<28} {'requests':>9} {'failures':>9} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    )
    total = check = None
    for row in rows:
        name = row["Name"]
        if name == "Aggregated":
            total = row
            continue
        if name == CHECK_GROUP:
            check = row
        print(
            f"{row['Type'] + ' ' + name:<28} {int(row['Request Count']):>9,} {int(row['Failure Count']):>9,}"
            f" {float(row['Requests/s']):>7.1f} {row['50%']:>7} {row['95%']:>7} {row['99%']:>7}"
        )
    if total is None or int(total["Request Count"]) == 0:
        print("no requests were made")
        return False
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    warmup_requests = sum(group["requests"] for group in warmup["groups"].values())
    warmup_failures = sum(group["failures"] for group in warmup["groups"].values())
    print(
        f"{'all':<28} {requests:>9,} {failures:>9,} {float(total['Requests/s']):>7.1f}"
        f" {total['50%']:>7} {total['95%']:>7} {total['99%']:>7}"
    )
    # The error rate counts the sign-in phase too: a refused sign-in is an error whenever it happens.
    all_requests, all_failures = requests + warmup_requests, failures + warmup_failures
    rate = all_failures / all_requests
    print(f"error rate: {rate:.3%} ({all_failures:,} of {all_requests:,} requests, sign-in phase included)")
    failures_file = Path(f"{csv_prefix}_failures.csv")
    if failures and failures_file.exists():
        with failures_file.open() as handle:
            for row in csv.DictReader(handle):
                print(f"  {row['Occurrences']} x {row['Method']} {row['Name']}: {row['Error']}")
    check_p95 = float(check["95%"]) if check and int(check["Request Count"]) else float("inf")
    check_ok, errors_ok = check_p95 < TARGET_CHECK_P95_MS, rate < TARGET_ERROR_RATE
    print(f"{'PASS' if check_ok else 'MISS'} consent check p95 {check_p95:.0f} ms (target < {TARGET_CHECK_P95_MS} ms)")
    print(f"{'PASS' if errors_ok else 'MISS'} error rate {rate:.3%} (target < {TARGET_ERROR_RATE:.1%})")
    return check_ok and errors_ok


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_into:
        prepare(Path(args.prepare_into), args.consumers, args.partners)
        return 0
    work = Path(tempfile.mkdtemp(prefix="portal-load-"))
    work.chmod(0o700)
    run = None
    try:
        if args.url:
            url, django_env = args.url.rstrip("/"), dict(os.environ)
        else:
            port, log_path = free_port(), PROD / "log" / "load-run-prod.log"
            run = run_prod_spawn(port, log_path)
            django_env = run_prod_wait(run, port, log_path, args.start_timeout)
            url = f"http://127.0.0.1:{port}"
        data_file = work / "data.json"
        print(f"preparing {args.consumers} consumers and {args.partners} partners ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--prepare-into",
                str(data_file),
                "--consumers",
                str(args.consumers),
                "--partners",
                str(args.partners),
            ],
            env=django_env,
            cwd=ROOT,
            check=True,
        )
        load_before = os.getloadavg()
        print(f"running locust against {url} for {args.duration} s ...", flush=True)
        run_locust(args, url, data_file, work / "locust")
        met = report(work / "locust", args.duration, load_before)
        return 0 if met else 1
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        if run is not None:
            print("stopping bin/run-prod ...", flush=True)
            run_prod_stop(run)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
