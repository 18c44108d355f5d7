"""A task for the real-worker test only; the worker loads it with ``--include``."""

import time

import redis
from celery import shared_task
from django.conf import settings


@shared_task(bind=True, max_retries=3)
def flaky_ping(self, key: str) -> int:
    store = redis.Redis.from_url(settings.REDIS_URL)
    attempts = store.incr(f"{key}:attempts")
    store.rpush(f"{key}:times", time.time())
    if attempts < 2:
        raise self.retry(countdown=2)
    store.set(f"{key}:done", attempts)
    return attempts


@shared_task
def file_touch(path: str) -> None:
    """Leave a file behind, so a test can tell that a worker ran this task."""
    with open(path, "w") as marker:
        marker.write("ran")


@shared_task
def request_id_note(key: str) -> str | None:
    """Store (and return) the request id the task runs under, so a test can read what the worker saw."""
    from portal.request_id import current_request_id

    request_id = current_request_id()
    redis.Redis.from_url(settings.REDIS_URL).set(key, request_id or "", ex=300)
    return request_id
