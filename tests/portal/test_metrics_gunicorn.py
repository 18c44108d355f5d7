"""Under gunicorn with two workers, /metrics counts every worker's requests (prometheus-client multiprocess mode)."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.consents.webhook_support import database_url_for_worker

TOKEN = "gunicorn-metrics-token-0123456789"
REQUESTS = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    response = httpx.get(url, headers=headers, timeout=30)
    return response.status_code, response.content


def healthz_count(base: str) -> float:
    status, body = get(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "portal_http_request_duration_seconds":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_count") and (s.labels["route"], s.labels["status"]) == ("/healthz", "2xx")
            )
    return 0.0


@pytest.mark.django_db(transaction=True)
def test_every_scrape_counts_the_requests_of_both_workers(tmp_path):
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    # A previous run's leftovers: gunicorn.conf.py clears them at start (unreadable, they would break every scrape).
    (multiproc_dir / "counter_4242.db").write_bytes(b"left over")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"PORTAL_VAR_DIR": str(tmp_path), "DATABASE_URL": database_url_for_worker(), "METRICS_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "gunicorn exited"
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        assert not (multiproc_dir / "counter_4242.db").exists()

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: get(f"{base}/healthz")[0], range(REQUESTS - 1)))
        assert statuses == [200] * (REQUESTS - 1)
        # Both workers served some of them (each writes its own file).
        assert len(list(multiproc_dir.glob("histogram_*.db"))) == 2

        # Whichever worker answers the scrape, it reports all the requests (the start-up probe included).
        assert [healthz_count(base) for _ in range(6)] == [REQUESTS] * 6
    finally:
        server.terminate()
        server.wait(timeout=30)
