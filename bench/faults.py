"""Fault injection with real processes: a withdrawal reaches its partner, once as far as the partner can tell.

Each scenario starts its own stack on PostgreSQL and Redis: gunicorn (2 workers) for the web,
Celery workers on the project's queue, beat for the outbox relay, and a receiving partner
(``bench/fault_receiver.py``) that verifies every webhook and applies each ``webhook-id`` once.
Consumers withdraw through the real web (HTTP POST with a session cookie); the fault is injected;
the suite waits for recovery and checks the database against the receiver. Each scenario prints
one line::

    scenario=<name> load=<n> faults=<n> lost=<n> duplicates_applied=<n> recovery_s=<x.x> [extras]

``lost`` counts committed changes the partner never received, withdrawals a consumer was told
succeeded that are not in the database, and committed revocations without an outbox event.
``recovery_s`` is the longest any committed event waited to be received, counted from the end of
the fault (last kill, Redis or PostgreSQL back) or, for an event committed later, from its commit:
the time until the backlog was delivered, not until the load ended. Extra fields follow: duplicates
the partner received (and dropped), the backlog of undelivered events when the fault ended, the
answers consumers and the partner API got, and the load average (recovery on a loaded machine is
mostly delivery throughput).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/faults.py [--quick]
    .venv/bin/python bench/faults.py --quick --scenario broker_outage --scenario worker_kill

``DATABASE_URL`` names the PostgreSQL server (its database is not touched): the suite creates
``faults_*`` databases there and drops them after. Redis is started by the suite (``redis-server``
must be installed); the database-restart scenario starts a throwaway PostgreSQL cluster of its own
(``initdb`` and ``pg_ctl``, run as the ``postgres`` user when the suite runs as root). The scenarios
of ``bench/faults_inprocess.py`` run too when that module exists.
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fault_receiver import FaultReceiver  # noqa: E402

RESULT_KEYS = ("scenario", "load", "faults", "lost", "duplicates_applied", "recovery_s")
CSRF_TOKEN = "".join(random.SystemRandom().choices(string.ascii_letters + string.digits, k=32))
HTTP_TIMEOUT = 60.0
STARTUP_TIMEOUT = 180.0


# --- Processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Children:
    """Every process the suite starts, each in its own session so its whole group can be killed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it open)
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


class Redis:
    """A redis-server of the suite's own on a fixed port, which a scenario can stop and start again."""

    def __init__(self, children: Children, run_dir: Path) -> None:
        self.children = children
        self.run_dir = run_dir
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.children.start("redis", [*argv, "--dir", str(self.run_dir), "--loglevel", "warning"], dict(os.environ))

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_until(answers, timeout=30, what="redis-server")

    def stop(self) -> None:
        # Killed, not shut down: whatever was queued in it is lost, as when a broker host dies.
        self.children.kill("redis")


@dataclass
class Postgres:
    """Connection parameters of a PostgreSQL server, and (for a throwaway cluster) how to stop and start it."""

    host: str
    port: int
    user: str
    password: str = ""
    data_dir: Path | None = None
    bin_dir: Path | None = None

    @classmethod
    def from_url(cls, url: str) -> "Postgres":
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
            raise SystemExit("DATABASE_URL must name a PostgreSQL server (postgres://user@host:port/db)")
        return cls(
            parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres", parts.password or ""
        )

    def url(self, name: str) -> str:
        credentials = self.user + (f":{self.password}" if self.password else "")
        return f"postgres://{credentials}@{self.host}:{self.port}/{name}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    # A throwaway cluster (the database-restart scenario) ------------------------------------

    @classmethod
    def throwaway(cls) -> "Postgres":
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not bins:
            raise SystemExit("the database-restart scenario needs PostgreSQL's initdb and pg_ctl")
        # In the system's temporary directory: the postgres user may not reach into run_dir's parents.
        data_dir = Path(tempfile.mkdtemp(prefix="faults-pgdata-"))
        cluster = cls("127.0.0.1", free_port(), "postgres", data_dir=data_dir, bin_dir=bins[-1])
        if os.getuid() == 0:
            shutil.chown(data_dir, "postgres")
        try:
            cluster._as_postgres(f"'{cluster.bin_dir}/initdb' -D '{data_dir}' -U postgres -A trust -E UTF8 --no-sync")
            cluster.start()
        except Exception:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        return cluster

    def _as_postgres(self, command: str) -> None:
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", command] if os.getuid() == 0 else ["sh", "-c", command]
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        if completed.returncode:
            raise RuntimeError(f"{command} failed: {completed.stdout[-500:]} {completed.stderr[-1000:]}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = f"{self.data_dir}/pg.log"
        self._as_postgres(f"'{self.bin_dir}/pg_ctl' -D '{self.data_dir}' -o '{options}' -l '{log}' -w -t 120 start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(f"'{self.bin_dir}/pg_ctl' -D '{self.data_dir}' -m {mode} -w -t 120 stop")


def use_database(url: str) -> None:
    """Point this process's Django connection at another database (closed first, reopened on next use)."""
    from django.db import connection

    connection.close()
    parts = urllib.parse.urlsplit(url)
    connection.settings_dict.update(
        NAME=parts.path.lstrip("/"), HOST=parts.hostname, PORT=parts.port, USER=parts.username or "postgres"
    )


def db_retry(function: Callable[[], Any], *, timeout: float = 120) -> Any:
    """Run a database read, reconnecting while the database comes back."""
    from django.db import Error, close_old_connections, connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            return function()
        except Error:
            if time.monotonic() > deadline:
                raise
            connection.close()
            close_old_connections()
            time.sleep(0.5)


# --- The stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """The running portal of one scenario: web, workers, beat, Redis, receiver, and its data."""

    run_dir: Path
    db_url: str
    redis: Redis
    children: Children
    receiver: FaultReceiver
    quick: bool
    web_port: int = field(default_factory=free_port)
    worker_names: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cluster: Postgres | None = None  # the scenario's own PostgreSQL cluster, when it stops and starts it

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.web_port}"

    def process_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def start_web(self, **extra_env: str) -> None:
        argv = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--workers", "2", "--bind", self.base]
        argv += ["--timeout", "60", "--graceful-timeout", "5", "--log-level", "warning"]
        self.children.start("web", argv, self.process_env(**extra_env))
        wait_until(lambda: http_get(self.base, "/healthz")[0] == 200, timeout=STARTUP_TIMEOUT, what="gunicorn")

    def start_worker(self, index: int = 0) -> None:
        name = f"worker{index}"
        argv = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING"]
        argv += ["--concurrency", "2", "--pool", "prefork", "--hostname", f"faults{index}-{os.getpid()}@%h"]
        argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        self.children.start(name, argv, self.process_env())
        if name not in self.worker_names:
            self.worker_names.append(name)

    def start_beat(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "WARNING"]
        argv += ["--schedule", str(self.run_dir / "beat-schedule")]
        self.children.start("beat", argv, self.process_env())

    def start_all(self, **web_env: str) -> None:
        self.start_web(**web_env)
        self.start_worker()
        self.start_beat()


def http_request(
    base: str, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    return http_request(base, "GET", path)


@dataclass
class Consumer:
    user_id: int
    cookie: str


@dataclass
class World:
    """What a scenario's load acts on: one purpose shared with one partner (the receiver), and consumers."""

    purpose_slug: str
    partner_id: int
    consumers: list[Consumer]
    api_token: str = ""


def world_build(stack: Stack, *, consumers: int, partner_api: bool = False) -> World:
    """Consumers who granted a fresh purpose, then the partner's sharing, so only withdrawals make events."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from audit.services import Actor
    from consents.models import PARTNER_SCOPES, Partner, Sharing
    from consents.services.consents import consent_grant
    from consents.services.partners import partner_credential_create
    from portal.models import User
    from tests.factories import PurposeFactory

    tag = secrets.token_hex(4)
    purpose = PurposeFactory(slug=f"faults-{tag}")
    users = User.objects.bulk_create([User(email=f"faults-{tag}-{n}@example.com") for n in range(consumers)])
    backend = settings.AUTHENTICATION_BACKENDS[0]
    people = []
    for user in users:
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = backend
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        people.append(Consumer(user.pk, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"))
    partner = Partner.objects.create(
        slug=f"faults-{tag}",
        name=f"Faults {tag}",
        kind="service_provider",
        country="DE",
        webhook_url=stack.receiver.url,
        webhook_secret=stack.receiver.secret,
    )
    Sharing.objects.create(partner=partner, purpose=purpose)
    world = World(purpose.slug, partner.pk, people)
    if partner_api:
        credential, secret = partner_credential_create(
            partner=partner, label="faults", scopes=PARTNER_SCOPES, actor=Actor.system("faults")
        )
        basic = f"{credential.application.client_id}:{secret}"
        status, _h, body = http_request(
            stack.base,
            "POST",
            "/oauth/token/",
            body=b"grant_type=client_credentials",
            headers={
                "authorization": "Basic " + base64.b64encode(basic.encode()).decode(),
                "content-type": "application/x-www-form-urlencoded",
            },
        )
        if status != 200:
            raise RuntimeError(f"token endpoint answered {status}: {body[:200]!r}")
        world.api_token = json.loads(body)["access_token"]
    return world


def withdraw(stack: Stack, world: World, consumer: Consumer) -> tuple[str, float]:
    """POST the withdraw form as the consumer's browser would; ``ok``, ``no_answer`` or the HTTP status."""
    started = time.monotonic()
    try:
        status, headers, _body = http_request(
            stack.base,
            "POST",
            f"/consents/{world.purpose_slug}/withdraw/",
            body=b"note=",
            headers={
                "cookie": f"{consumer.cookie}; csrftoken={CSRF_TOKEN}",
                "x-csrftoken": CSRF_TOKEN,
                "content-type": "application/x-www-form-urlencoded",
            },
        )
    except (ConnectionError, http.client.HTTPException, OSError):
        return "no_answer", time.monotonic() - started
    ok = status == 302 and headers.get("location", "").startswith("/consents/")
    return ("ok" if ok else str(status)), time.monotonic() - started


@dataclass
class Verdict:
    lost: int
    recovery_s: float
    missing_events: int
    unsaved_successes: int
    events_without_change: int


def verify(stack: Stack, world: World, *, succeeded: set[int], fault_ended: float, timeout: float) -> Verdict:
    """Wait until every committed event has reached the receiver (or ``timeout``), then count what is lost."""
    from consents.models import Consent, ConsentStatus, OutboxEvent

    def committed_event_ids() -> set[str]:
        return {str(i) for i in OutboxEvent.objects.filter(partner_id=world.partner_id).values_list("id", flat=True)}

    deadline = time.monotonic() + timeout
    expected = db_retry(committed_event_ids)
    while time.monotonic() < deadline:
        expected = db_retry(committed_event_ids)
        if expected and expected <= stack.receiver.ids():
            break
        time.sleep(0.5)
    received = stack.receiver.ids()
    # An event committed after the fault ended owes nothing to the recovery: its wait is counted
    # from its own commit (its created_at, on this machine's clock), the backlog's from the fault's end.
    to_monotonic = time.time() - time.monotonic()
    committed = dict(
        db_retry(lambda: list(OutboxEvent.objects.filter(partner_id=world.partner_id).values_list("id", "created_at")))
    )
    arrivals = [
        stack.receiver.first_arrival[i] - max(fault_ended, committed[uuid.UUID(i)].timestamp() - to_monotonic)
        for i in expected
        if i in stack.receiver.first_arrival
    ]
    missing = len(expected - received)
    revoked = set(
        db_retry(
            lambda: list(
                Consent.objects.filter(purpose__slug=world.purpose_slug, status=ConsentStatus.REVOKED).values_list(
                    "user_id", flat=True
                )
            )
        )
    )
    with_event = set(
        db_retry(
            lambda: list(
                OutboxEvent.objects.filter(partner_id=world.partner_id).values_list("consent__user_id", flat=True)
            )
        )
    )
    unsaved = len(succeeded - revoked)
    without_event = len(revoked - with_event)
    recovery = max([0.0, *arrivals]) if not missing else timeout
    return Verdict(missing + unsaved + without_event, recovery, missing, unsaved, without_event)


def backlog(stack: Stack, world: World) -> int:
    """Committed events the partner has not received yet."""
    from consents.models import OutboxEvent

    ids = db_retry(lambda: list(OutboxEvent.objects.filter(partner_id=world.partner_id).values_list("id", flat=True)))
    return len({str(i) for i in ids} - stack.receiver.ids())


def result_line(result: dict[str, Any]) -> str:
    fields = [f"{key}={result[key]}" for key in RESULT_KEYS if key != "recovery_s"]
    fields.append(f"recovery_s={result['recovery_s']:.1f}")
    for key, value in result.items():
        if key not in RESULT_KEYS:
            shown = ",".join(f"{k}:{v}" for k, v in sorted(value.items())) if isinstance(value, dict) else value
            fields.append(f"{key}={shown if shown != '' else '-'}")
    return " ".join(fields)


def outcome(name: str, load: int, faults: int, verdict: Verdict, stack: Stack, **extras: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "scenario": name,
        "load": load,
        "faults": faults,
        "lost": verdict.lost,
        "duplicates_applied": stack.receiver.duplicates_applied(),
        "recovery_s": round(verdict.recovery_s, 1),
        "duplicates_received": stack.receiver.duplicates_received(),
        "bad_signatures": stack.receiver.bad_signatures,
        "load_avg": round(os.getloadavg()[0], 1),
    }
    if verdict.lost:
        result |= {
            "missing_events": verdict.missing_events,
            "unsaved_successes": verdict.unsaved_successes,
            "events_without_change": verdict.events_without_change,
        }
    return result | extras


class Server:
    """The PostgreSQL server the scenarios use, with a migrated template database copied for each scenario."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.template = f"faults_tpl_{os.getpid()}"
        self.databases: list[str] = []

    def prepare(self) -> None:
        from django.core.management import call_command

        self.pg.sql(f'DROP DATABASE IF EXISTS "{self.template}"')
        self.pg.sql(f'CREATE DATABASE "{self.template}"')
        self.databases.append(self.template)
        use_database(self.pg.url(self.template))
        call_command("migrate", verbosity=0)
        use_database(self.pg.url("postgres"))

    def copy(self, name: str) -> str:
        database = f"faults_{os.getpid()}_{name}"
        self.pg.sql(f'DROP DATABASE IF EXISTS "{database}"')
        self.pg.sql(f'CREATE DATABASE "{database}" TEMPLATE "{self.template}"')
        self.databases.append(database)
        return self.pg.url(database)

    def drop(self, database_url: str) -> None:
        name = urllib.parse.urlsplit(database_url).path.lstrip("/")
        use_database(self.pg.url("postgres"))
        with contextlib.suppress(Exception):
            self.pg.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def drop_all(self) -> None:
        for name in list(self.databases):
            self.drop(self.pg.url(name))


@contextlib.contextmanager
def stack_running(
    server: Server, name: str, *, quick: bool, receiver_delay: float = 0.0, own_cluster: bool = False
) -> Iterator[Stack]:
    """A fresh database and Redis, the receiver, and (started by the scenario) the portal's processes."""
    from consents.models import webhook_secret_generate

    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=os.environ["PORTAL_VAR_DIR"]))
    children = Children(run_dir)
    receiver = FaultReceiver(webhook_secret_generate(), delay=receiver_delay)
    cluster: Postgres | None = None
    db_url = ""
    try:
        if own_cluster:
            cluster = Postgres.throwaway()
            db_url = cluster.url("portal")
            cluster.sql("CREATE DATABASE portal")
            dump = subprocess.run(
                [str(cluster.bin_dir / "pg_dump"), "--no-owner", server.pg.url(server.template)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            subprocess.run(
                [str(cluster.bin_dir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", db_url],
                input=dump.stdout,
                check=True,
                capture_output=True,
                timeout=300,
            )
        else:
            db_url = server.copy(name)
        use_database(db_url)
        redis = Redis(children, run_dir)
        redis.start()
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis.url}
        yield Stack(run_dir, db_url, redis, children, receiver, quick, env=env, cluster=cluster)
    finally:
        children.stop_all()
        receiver.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                use_database(server.pg.url("postgres"))
                cluster.stop("immediate")
            if cluster.data_dir is not None:
                shutil.rmtree(cluster.data_dir, ignore_errors=True)
        elif db_url:
            server.drop(db_url)
        if os.environ.get("FAULTS_KEEP_LOGS"):
            print(f"  logs kept in {run_dir}", flush=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


# --- Load --------------------------------------------------------------------------------------


class Load:
    """Withdrawals by many consumers from a few threads, paced, recording every answer."""

    def __init__(self, stack: Stack, world: World, *, threads: int = 4) -> None:
        self.stack = stack
        self.world = world
        self.threads = threads
        self.answers: Counter[str] = Counter()
        self.succeeded: set[int] = set()
        self.unanswered: list[Consumer] = []
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def one(self, consumer: Consumer) -> str:
        answer, latency = withdraw(self.stack, self.world, consumer)
        with self.lock:
            self.answers[answer] += 1
            self.latencies.append(latency)
            if answer == "ok":
                self.succeeded.add(consumer.user_id)
            else:
                self.unanswered.append(consumer)
        return answer

    def run(self, consumers: list[Consumer], *, rate: float) -> None:
        """Send one withdrawal per consumer at about ``rate`` per second (blocking)."""
        started = time.monotonic()
        with ThreadPoolExecutor(self.threads) as pool:
            for n, consumer in enumerate(consumers):
                wait = started + n / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                pool.submit(self.one, consumer)

    def start(self, consumers: list[Consumer], *, rate: float) -> None:
        self.thread = threading.Thread(target=self.run, args=(consumers,), kwargs={"rate": rate}, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def retry_unanswered(self) -> None:
        """Consumers who got no success try again once the portal is back, as a person would."""
        retry, self.unanswered = self.unanswered, []
        for consumer in retry:
            self.one(consumer)

    def p95_ms(self) -> int:
        ordered = sorted(self.latencies)
        return round(ordered[int(0.95 * (len(ordered) - 1))] * 1000) if ordered else 0


def warm_up(stack: Stack, world: World, consumer: Consumer) -> None:
    """One withdrawal delivered end to end: the web, broker, worker and receiver all work."""
    answer, _latency = withdraw(stack, world, consumer)
    if answer != "ok":
        raise RuntimeError(f"warm-up withdrawal answered {answer}")
    from consents.models import OutboxEvent

    ids = {str(i) for i in OutboxEvent.objects.filter(partner_id=world.partner_id).values_list("id", flat=True)}
    wait_until(lambda: ids <= stack.receiver.ids(), timeout=STARTUP_TIMEOUT, what="the first delivery")


def lease_seconds() -> float:
    """The delivery claim lease: how long a dead worker's claimed event waits before the relay re-sends it."""
    from consents.services.delivery import claim_lease

    return claim_lease().total_seconds()


# --- Scenarios ---------------------------------------------------------------------------------


def crash_after_commit(server: Server, quick: bool) -> dict[str, Any]:
    """SIGKILL the web process between commit and task enqueue, N times: the relay delivers every change."""
    kills = 5 if quick else 100
    with stack_running(server, "crash_after_commit", quick=quick) as stack:
        stack.start_worker()
        stack.start_beat()
        # Every withdrawal's gunicorn worker kills itself after its commit (gunicorn starts a new one).
        stack.start_web(PORTAL_FAULT_CRASH_AFTER_COMMIT="1")
        world = world_build(stack, consumers=kills)
        load = Load(stack, world, threads=1)
        for consumer in world.consumers:
            load.one(consumer)
        fault_ended = time.monotonic()
        faults = load.answers["no_answer"]
        # The consumer never saw an answer; whatever committed must still reach the partner.
        verdict = verify(stack, world, succeeded=load.succeeded, fault_ended=fault_ended, timeout=90)
        return outcome("crash_after_commit", kills, faults, verdict, stack, answers=dict(load.answers))


def broker_outage(server: Server, quick: bool) -> dict[str, Any]:
    """Stop Redis for 60 s (quick: 10 s) during N withdrawals: consumers and partners still get answers."""
    outage = 10.0 if quick else 60.0
    withdrawals = 60 if quick else 1000
    with stack_running(server, "broker_outage", quick=quick) as stack:
        stack.start_all()
        world = world_build(stack, consumers=withdrawals + 1, partner_api=True)
        warm_up(stack, world, world.consumers[0])
        load = Load(stack, world)
        # Spread the withdrawals so most of them happen while Redis is down.
        rate = withdrawals / (outage * 1.2)
        load.start(world.consumers[1:], rate=rate)
        time.sleep(outage * 0.1)
        stack.redis.stop()
        down_since = time.monotonic()
        api = PartnerProbe(stack, world)
        api.start()
        while time.monotonic() - down_since < outage:
            time.sleep(0.2)
        api.stop()
        stack.redis.start()
        fault_ended = time.monotonic()
        waiting = backlog(stack, world)
        load.join()
        load.retry_unanswered()
        verdict = verify(stack, world, succeeded=load.succeeded, fault_ended=fault_ended, timeout=180)
        return outcome(
            "broker_outage",
            withdrawals,
            1,
            verdict,
            stack,
            web_errors=sum(n for answer, n in load.answers.items() if answer != "ok"),
            backlog_at_end=waiting,
            withdraw_p95_ms=load.p95_ms(),
            api_calls=api.calls,
            api_errors=dict(api.errors),
        )


class PartnerProbe:
    """The partner calling the API while a fault lasts: a consent check and an ack of an event it received."""

    def __init__(self, stack: Stack, world: World) -> None:
        self.stack = stack
        self.world = world
        self.calls = 0
        self.errors: Counter[str] = Counter()
        self.running = False
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def stop(self) -> None:
        self.running = False
        self.thread.join()

    def call(self, method: str, path: str, body: bytes = b"") -> None:
        headers = {"authorization": f"Bearer {self.world.api_token}", "content-type": "application/json"}
        try:
            status, _h, _b = http_request(self.stack.base, method, path, body=body, headers=headers)
        except (ConnectionError, http.client.HTTPException, OSError):
            status = 0
        self.calls += 1
        if status >= 300 or status == 0:
            self.errors[f"{method} {path.split('/')[3]} {status}"] += 1

    def loop(self) -> None:
        while self.running:
            received = sorted(self.stack.receiver.ids())
            if received:
                ack = json.dumps({"status": "processed"}).encode()
                self.call("POST", f"/api/v1/events/{random.choice(received)}/ack", ack)
            self.call("GET", "/api/v1/events?limit=10")
            time.sleep(0.5)


def worker_kill(server: Server, quick: bool) -> dict[str, Any]:
    """kill -9 a Celery worker (a pool process, or the whole worker then restarted) while deliveries are in flight."""
    kills = 5 if quick else 100
    withdrawals = 30 if quick else 500
    interval = 1.0 if quick else 1.5
    # The partner takes 0.1 s per webhook, so a kill every 1.5 s finds deliveries in flight.
    with stack_running(server, "worker_kill", quick=quick, receiver_delay=0.1) as stack:
        stack.start_all()
        world = world_build(stack, consumers=withdrawals + 1)
        warm_up(stack, world, world.consumers[0])
        load = Load(stack, world)
        load.start(world.consumers[1:], rate=withdrawals / max(1.0, kills * interval * 0.8))
        faults = 0
        whole = 0
        for n in range(kills):
            time.sleep(interval)
            worker = stack.children.procs["worker0"]
            # A restarted worker first starts its pool: kill it when it can be working again.
            with contextlib.suppress(RuntimeError):
                wait_until(lambda pid=worker.pid: len(descendants(pid)) >= 2, timeout=30, what="the worker's pool")
            with contextlib.suppress(RuntimeError):
                wait_until(lambda: stack.receiver.in_flight > 0, timeout=5, what="a delivery in flight", interval=0.02)
            pool = descendants(worker.pid)
            if n % 3 == 2 or not pool:
                # The whole worker dies (its host, say); a supervisor starts it again.
                stack.children.kill("worker0")
                stack.start_worker()
                whole += 1
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(random.choice(pool), signal.SIGKILL)
            faults += 1
        fault_ended = time.monotonic()
        waiting = backlog(stack, world)
        load.join()
        load.retry_unanswered()
        bound = lease_seconds() + 60
        verdict = verify(stack, world, succeeded=load.succeeded, fault_ended=fault_ended, timeout=bound)
        return outcome(
            "worker_kill",
            withdrawals,
            faults,
            verdict,
            stack,
            backlog_at_end=waiting,
            whole_worker_kills=whole,
            lease_s=int(lease_seconds()),
            web_errors=sum(n for answer, n in load.answers.items() if answer != "ok"),
        )


def database_restart(server: Server, quick: bool) -> dict[str, Any]:
    """Stop PostgreSQL for a while during load: the web answers 503 (problem details on the API), then recovers."""
    down = 5.0 if quick else 20.0
    withdrawals = 40 if quick else 400
    with stack_running(server, "database_restart", quick=quick, own_cluster=True) as stack:
        cluster = stack.cluster
        assert cluster is not None
        stack.start_all()
        world = world_build(stack, consumers=withdrawals + 1, partner_api=True)
        warm_up(stack, world, world.consumers[0])
        load = Load(stack, world)
        load.start(world.consumers[1:], rate=withdrawals / (down * 2))
        time.sleep(down * 0.3)
        from django.db import connection

        connection.close()
        cluster.stop("fast")
        down_since = time.monotonic()
        probe = DownProbe(stack, world)
        probe.start()
        while time.monotonic() - down_since < down:
            time.sleep(0.2)
        probe.stop()
        cluster.start()
        fault_ended = time.monotonic()
        load.join()
        # Until the web answers again; then whoever was refused withdraws again.
        wait_until(lambda: http_get(stack.base, "/healthz")[0] == 200, timeout=120, what="the web to recover")
        web_recovered = time.monotonic() - fault_ended
        load.retry_unanswered()
        verdict = verify(stack, world, succeeded=load.succeeded, fault_ended=fault_ended, timeout=lease_seconds() + 60)
        return outcome(
            "database_restart",
            withdrawals,
            1,
            verdict,
            stack,
            web_recovered_s=round(web_recovered, 1),
            down_answers=dict(probe.answers),
            bad_down_answers=probe.bad,
            retried=sum(n for answer, n in load.answers.items() if answer != "ok"),
        )


class DownProbe:
    """While the database is down: a page and an API call, each of which must be a 503 with Retry-After."""

    def __init__(self, stack: Stack, world: World) -> None:
        self.stack = stack
        self.world = world
        self.answers: Counter[str] = Counter()
        self.bad = 0
        self.running = False
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def stop(self) -> None:
        self.running = False
        self.thread.join()

    def check(self, kind: str, path: str, headers: dict[str, str], content_type: str) -> None:
        try:
            status, answer_headers, _body = http_request(self.stack.base, "GET", path, headers=headers)
        except (ConnectionError, http.client.HTTPException, OSError):
            self.answers[f"{kind}-no_answer"] += 1
            self.bad += 1
            return
        self.answers[f"{kind}-{status}"] += 1
        good = status == 503 and "retry-after" in answer_headers
        good = good and answer_headers.get("content-type", "").startswith(content_type)
        # A request that got through just before the stop, or just after the start, may be a 200.
        if not good and status != 200:
            self.bad += 1

    def loop(self) -> None:
        consumer = self.world.consumers[0]
        while self.running:
            self.check("page", "/consents/", {"cookie": consumer.cookie}, "text/html")
            self.check(
                "api",
                "/api/v1/events?limit=5",
                {"authorization": f"Bearer {self.world.api_token}"},
                "application/problem+json",
            )
            time.sleep(0.25)


SCENARIOS: dict[str, Callable[[Server, bool], dict[str, Any]]] = {
    "crash_after_commit": crash_after_commit,
    "broker_outage": broker_outage,
    "worker_kill": worker_kill,
    "database_restart": database_restart,
}


def inprocess_scenarios() -> dict[str, Callable[[bool], dict[str, Any]]]:
    try:
        from bench.faults_inprocess import SCENARIOS as INPROCESS
    except ImportError:
        return {}
    return dict(INPROCESS)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; exit 0 if nothing was lost or applied twice, 1 if something was, 2 on an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations and shorter faults (the CI run)")
    parser.add_argument("--scenario", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results to this file as a JSON list")
    args = parser.parse_args(argv)

    inprocess = inprocess_scenarios()
    known = list(inprocess) + list(SCENARIOS)
    chosen = args.scenario or known
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")

    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    pg = Postgres.from_url(database_url)
    var_dir = Path(os.environ.get("PORTAL_VAR_DIR") or tempfile.gettempdir()) / f"faults-{os.getpid()}"
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir.chmod(0o755)
    os.environ.update(
        {
            "PORTAL_ENV": "development",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "PORTAL_VAR_DIR": str(var_dir),
            "WEBHOOK_ALLOW_PRIVATE": "1",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": pg.url("postgres"),
        }
    )
    import django

    django.setup()

    signal.signal(signal.SIGTERM, _interrupt)
    results: list[dict[str, Any]] = []
    failed = False
    server = Server(pg)
    try:
        server.prepare()
        for name in chosen:
            started = time.monotonic()
            try:
                result = (
                    SCENARIOS[name](server, args.quick)
                    if name in SCENARIOS
                    else _inprocess(server, inprocess[name], name, args.quick)
                )
            except Exception as exc:
                failed = True
                print(f"scenario={name} error={type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
                continue
            result["duration_s"] = round(time.monotonic() - started, 1)
            print(result_line(result), flush=True)
            results.append(result)
    finally:
        server.drop_all()
        if not os.environ.get("FAULTS_KEEP_LOGS"):
            shutil.rmtree(var_dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if failed:
        return 2
    return 1 if any(r["lost"] or r["duplicates_applied"] for r in results) else 0


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so every child is killed on the way out.
    raise KeyboardInterrupt


def _inprocess(server: Server, run: Callable[[bool], dict[str, Any]], name: str, quick: bool) -> dict[str, Any]:
    """An in-process scenario (bench/faults_inprocess.py), on a fresh migrated database of its own."""
    database_url = server.copy(name)
    use_database(database_url)
    try:
        return run(quick)
    finally:
        server.drop(database_url)


if __name__ == "__main__":
    sys.exit(main())
