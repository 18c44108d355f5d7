"""Celery beat's scheduler with Redis: RedBeat keeps the schedule and a lock in Redis, so beat can run on
several hosts and only the holder of the lock sends periodic tasks; the others wait to take over.

Configured in settings only when ``REDIS_URL`` is set; the embedded default keeps Celery's file scheduler.
"""

import logging
from typing import Any

from celery import Celery
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock

logger = logging.getLogger(__name__)

SETTINGS = ("redbeat_redis_url", "redbeat_redis_options", "redbeat_key_prefix", "redbeat_lock_timeout")


class PortalBeatScheduler(RedBeatScheduler):
    """RedBeat that outlives a Redis outage instead of exiting, and never sends without the lock.

    RedBeat extends its lock at every tick and lets any Redis error end the beat process. Here a
    tick while Redis is unreachable is skipped, and a beat whose lock expired meanwhile (another host
    may hold it now) sends nothing until it holds the lock again.
    """

    lock: Lock | None = None

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        # RedBeat looks its settings up by their bare names (``redbeat_redis_url``), which the ``CELERY_``
        # namespace of Django's settings hides from it (it would fall back to the broker's options).
        app.conf.update({name: app.conf.get(name) for name in SETTINGS if app.conf.get(name) is not None})
        super().__init__(app, *args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if not self._lock_hold():
                return float(self.max_interval)
            return float(super().tick(*args, **kwargs))
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("beat: Redis is unreachable; trying again in %s s", self.max_interval)
            return float(self.max_interval)

    def _lock_hold(self) -> bool:
        """Extend the lock this beat holds, or take it if it is free; ``False`` while another beat has it."""
        lock = self.lock
        if lock is None:
            # RedBeat takes the lock when beat starts (``beat_init``); that failed if Redis was down then.
            client = get_redis(self.app)
            lock = self.lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
            lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        try:
            lock.extend(int(self.lock_timeout))
            return True
        except LockError:
            pass  # expired while this beat could not reach Redis, or never taken
        if lock.acquire(blocking=False):
            logger.info("beat: Acquired lock")
            # A Redis that restarted without its data lost the schedule too: put this beat's entries back.
            self.setup_schedule()
            return True
        return False
