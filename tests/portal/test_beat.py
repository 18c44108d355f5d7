"""Beat on two hosts: only the holder of the Redis lock sends periodic tasks; the other takes over when it dies."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings

from portal.beat import PortalBeatScheduler
from tests.conftest import ROOT

pytestmark = pytest.mark.worker

LOCK_TIMEOUT = 6


class Beats:
    """Two real ``celery beat`` processes (the production scheduler) on one schedule in the test Redis."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = redis.Redis.from_url(settings.REDIS_URL)
        name = f"beat-test-{uuid.uuid4().hex}"
        self.prefix, self.queue = f"{name}:", name
        env = {
            **os.environ,
            "BEAT_TEST_PREFIX": self.prefix,
            "BEAT_TEST_QUEUE": self.queue,
            "BEAT_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT),
        }
        self.logs = [tmp_path / f"beat{n}.log" for n in range(2)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.portal.beat_app", "beat", "--loglevel", "INFO"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
            )
            for log in self.logs
        ]
        self.sent_at: list[float] = []

    def holders(self) -> list[int]:
        """Which beats have logged taking the lock."""
        return [n for n, log in enumerate(self.logs) if b"beat: Acquired lock" in log.read_bytes()]

    def watch(self, seconds: float, until=None) -> None:
        """Record when each message arrives on the probe's queue, for ``seconds`` (or until ``until()``)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            assert any(proc.poll() is None for proc in self.procs), "both beats died"
            count = self.store.llen(self.queue)
            self.sent_at += [time.monotonic()] * (count - len(self.sent_at))
            time.sleep(0.05)

    def sent_between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.sent_at)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        keys = list(self.store.scan_iter(f"{self.prefix}*"))
        self.store.delete(self.queue, *keys)


@pytest.fixture
def beats(tmp_path) -> Iterator[Beats]:
    if not os.environ.get("REDIS_URL"):
        pytest.fail("REDIS_URL must point at the test Redis (the README's test command starts one)")
    started = Beats(tmp_path)
    yield started
    started.close()


def test_two_beats_send_each_periodic_run_once_and_the_second_takes_over_when_the_first_dies(beats):
    beats.watch(60, until=lambda: len(beats.sent_at) >= 2)
    assert len(beats.sent_at) >= 2, "no beat sent the one-second task"
    start = time.monotonic()
    beats.watch(8)
    end = time.monotonic()
    # One run a second: two beats each sending would double this.
    assert beats.sent_between(start, end) <= (end - start) + 1
    assert beats.sent_between(start, end) >= (end - start) - 2
    (holder,) = beats.holders()

    # The holder's host dies: its lock expires and the other beat, which has been waiting, takes over.
    os.killpg(beats.procs[holder].pid, signal.SIGKILL)
    killed = time.monotonic()
    beats.watch(LOCK_TIMEOUT + 30, until=lambda: len(beats.holders()) == 2)
    assert len(beats.holders()) == 2, "the waiting beat never took the lock"
    took_over = time.monotonic()
    print(f"the second beat took over {took_over - killed:.1f} s after the first was killed")
    beats.watch(3, until=lambda: beats.sent_between(took_over, time.monotonic()) >= 1)
    start = time.monotonic()
    beats.watch(6)
    end = time.monotonic()
    assert beats.sent_between(start, end) <= (end - start) + 1
    assert beats.sent_between(start, end) >= (end - start) - 2

    gaps = [later - earlier for earlier, later in zip(beats.sent_at, beats.sent_at[1:], strict=False)]
    assert min(gaps) >= 0.5, "two runs went out together"


class PrivateRedis:
    """A redis-server of this test's own (no persistence), which it can stop and start again."""

    def __init__(self, tmp_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*argv, "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


def _scheduler(url: str) -> PortalBeatScheduler:
    app = Celery("beat-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = app.conf.redbeat_redis_url = url
    app.conf.redbeat_lock_timeout = LOCK_TIMEOUT
    app.conf.beat_schedule = {"beat-probe": {"task": "tests.portal.beat_probe", "schedule": 1.0}}
    return PortalBeatScheduler(app=app)


def _tick_for(scheduler: PortalBeatScheduler, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(scheduler.tick(), 0.2, max(deadline - time.monotonic(), 0)))


def test_beat_outlives_a_redis_restart_and_sends_only_while_it_holds_the_lock(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        beat = _scheduler(server.url)
        store = redis.Redis.from_url(server.url)
        _tick_for(beat, 2.5)
        assert store.llen("default") >= 1, "the beat did not send the one-second task"

        server.stop()
        assert beat.tick() == beat.max_interval, "a tick without Redis waits instead of ending beat"

        # Redis comes back empty (no lock, no schedule), and another beat is quicker to take the lock.
        server.start()
        other = _scheduler(server.url)
        assert other._lock_hold()
        _tick_for(beat, 2.5)
        assert store.llen("default") == 0, "sent without the lock"

        other.lock.release()
        _tick_for(beat, 2.5)
        assert store.llen("default") >= 1, "did not take the free lock back, or lost its schedule"
    finally:
        server.stop()
