"""Benchmark: revoke → signed webhook received, with Redis, 2 Celery worker processes and a local receiver.

Prints p50/p95/max latency of single revocations (one at a time, so it measures latency, not
queueing) and the sustained delivery rate over a bounded burst. Targets: p95 ≤ 500 ms, ≥ 150/s.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/webhook_latency.py
    # PostgreSQL instead of the default throwaway SQLite file:
    DATABASE_URL=postgres://... REDIS_URL=... .venv/bin/python bench/webhook_latency.py

Everything runs in a throwaway ``PORTAL_VAR_DIR``; the Redis database given is used for the broker
(its ``celery`` queue is emptied first), so point it at a database nothing else uses.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wrk import process_cpu, with_descendants  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-samples", type=int, default=200, help="revocations measured one at a time")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between latency samples")
    parser.add_argument("--burst-consumers", type=int, default=500, help="revocations in the burst")
    parser.add_argument("--burst-partners", type=int, default=4, help="partners receiving each burst revocation")
    parser.add_argument("--processes", type=int, default=2, help="worker processes that run tasks")
    parser.add_argument(
        "--prefetch-multiplier", type=int, help="override CELERY_WORKER_PREFETCH_MULTIPLIER (1) for the workers"
    )
    parser.add_argument(
        "--pool",
        choices=["prefork", "solo"],
        default="prefork",
        help="prefork: one worker with --concurrency PROCESSES (as `runall` starts it); solo: PROCESSES workers",
    )
    return parser.parse_args()


class Receiver:
    """The partner: verifies every signature and records when each event arrived."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks import Webhook

        self.webhook = Webhook(secret)
        self.arrivals: dict[str, float] = {}
        self.failures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real partner endpoint would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived = time.time()
                try:
                    receiver.webhook.verify(body, dict(self.headers.items()))
                except Exception:
                    with receiver.lock:
                        receiver.failures += 1
                    self.answer(400)
                    return
                with receiver.lock:
                    receiver.arrivals.setdefault(self.headers["webhook-id"], arrived)
                self.answer(204)

            def answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def wait_for(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(i in self.arrivals for i in ids):
                    return
            time.sleep(0.005)
        missing = sum(1 for i in ids if i not in self.arrivals)
        raise SystemExit(f"{missing} of {len(ids)} webhooks did not arrive within {timeout} s")


def cpu_seconds(root_pids: list[int]) -> float:
    """User + system CPU time of these processes and all their descendants (Linux /proc)."""
    parents, times = process_cpu()
    return sum(times.get(pid, 0.0) for pid in with_descendants(root_pids, parents))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    try:
        run(args, var_dir)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace, var_dir: Path) -> None:
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL to a Redis database the benchmark may use.")
    os.environ.update(
        {
            "PORTAL_ENV": "development",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "PORTAL_VAR_DIR": str(var_dir),
            "WEBHOOK_ALLOW_PRIVATE": "1",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{var_dir / 'bench.sqlite3'}")

    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from audit.services import Actor
    from consents.models import OutboxEvent, Partner, Sharing, webhook_secret_generate
    from consents.services.consents import consent_grant, consent_revoke
    from consents.services.outbox import deliveries_gathered
    from portal.models import User
    from tests.factories import PurposeFactory

    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("celery")
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; broker: {os.environ['REDIS_URL']}; var: {var_dir}")

    latency_purpose = PurposeFactory(slug="bench-latency")
    burst_purpose = PurposeFactory(slug="bench-burst")
    total = args.latency_samples + 20 + args.burst_consumers
    users = User.objects.bulk_create([User(email=f"bench{n}@example.com") for n in range(total)])
    print(f"granting {len(users) * 2} consents (no partner receives them yet) ...")
    for user in users:
        consent_grant(user=user, purpose=latency_purpose, actor=Actor.consumer(user))
        consent_grant(user=user, purpose=burst_purpose, actor=Actor.consumer(user))

    secret = webhook_secret_generate()
    receiver = Receiver(secret)
    partners = [
        Partner.objects.create(
            slug=f"bench-{n}",
            name=f"Bench {n}",
            kind="service_provider",
            country="DE",
            webhook_url=receiver.url,
            webhook_secret=secret,
        )
        for n in range(max(1, args.burst_partners))
    ]
    Sharing.objects.create(partner=partners[0], purpose=latency_purpose)
    for partner in partners:
        Sharing.objects.create(partner=partner, purpose=burst_purpose)

    if args.pool == "prefork":
        pools = [("--concurrency", str(args.processes), "--pool", "prefork")]
    else:
        pools = [("--pool", "solo", "--hostname", f"bench{n}@%h") for n in range(args.processes)]
    if args.prefetch_multiplier:
        pools = [(*pool, "--prefetch-multiplier", str(args.prefetch_multiplier)) for pool in pools]
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING", *pool),
                *("--without-heartbeat", "--without-gossip", "--without-mingle"),
            ],
            cwd=ROOT,
            env=os.environ.copy(),
        )
        for pool in pools
    ]

    def revoke(user: User, purpose: object) -> list[str]:
        consent = consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
        return [str(i) for i in OutboxEvent.objects.filter(consent=consent).values_list("id", flat=True)]

    try:
        warmup, users = users[:20], users[20:]
        print("warming up the worker ...")
        for user in warmup:
            receiver.wait_for(revoke(user, latency_purpose), timeout=60)

        print(f"latency: {args.latency_samples} revocations, one every {args.interval * 1000:.0f} ms ...")
        latencies: list[float] = []
        for user in users[: args.latency_samples]:
            started = time.time()
            ids = revoke(user, latency_purpose)
            receiver.wait_for(ids, timeout=30)
            latencies.append((receiver.arrivals[ids[0]] - started) * 1000)
            time.sleep(args.interval)

        burst_users = users[args.latency_samples :]
        print(f"burst: {len(burst_users)} revocations x {len(partners)} partners, committed at once ...")
        ids = []
        committed: list[float] = []
        worker_cpu_before = cpu_seconds([w.pid for w in workers])
        own_cpu_before = time.process_time()
        with transaction.atomic(), deliveries_gathered():
            # Registered first, so it runs first after the commit, before the deliveries are queued.
            transaction.on_commit(lambda: committed.append(time.time()))
            # Gathered, the burst's deliveries are queued as batches of each partner's events, as a
            # bulk change (outbox_consents_changed) queues them.
            for user in burst_users:
                ids.extend(revoke(user, burst_purpose))
        receiver.wait_for(ids, timeout=600)
        worker_cpu = cpu_seconds([w.pid for w in workers]) - worker_cpu_before
        own_cpu = time.process_time() - own_cpu_before
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    arrivals = sorted(receiver.arrivals[i] for i in ids)
    elapsed = arrivals[-1] - committed[0]
    steady = arrivals[-1] - arrivals[0]
    print()
    prefetch = args.prefetch_multiplier or settings.CELERY_WORKER_PREFETCH_MULTIPLIER
    print(f"{connection.vendor}, {args.processes} worker processes ({args.pool}, prefetch x{prefetch}), Redis broker")
    print(f"revoke → signed webhook received ({len(latencies)} samples)")
    print(f"  p50 {statistics.median(latencies):7.1f} ms")
    print(f"  p95 {percentile(latencies, 0.95):7.1f} ms   (target ≤ 500 ms)")
    print(f"  max {max(latencies):7.1f} ms")
    print(f"burst of {len(ids)} webhooks")
    print(f"  commit → last received: {elapsed:.2f} s = {len(ids) / elapsed:.0f} deliveries/s   (target ≥ 150/s)")
    print(f"  first → last received:  {steady:.2f} s = {(len(ids) - 1) / steady:.0f} deliveries/s")
    print(
        f"  CPU per delivery: workers {worker_cpu / len(ids) * 1000:.1f} ms; "
        f"this process (producer, enqueue, receiver) {own_cpu / len(ids) * 1000:.1f} ms"
    )
    print(f"  the workers' CPU alone would allow ≈ {2 * len(ids) / worker_cpu:.0f} deliveries/s on 2 idle cores")
    print(f"load average at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"signature failures at the receiver: {receiver.failures}")


if __name__ == "__main__":
    main()
