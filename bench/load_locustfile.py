"""The locust users of ``bench/load.py``: consumers in the portal's pages, partners on the API.

Run by ``bench/load.py`` (``locust -f bench/load_locustfile.py --headless ...``), which prepares
the accounts and credentials and passes them in the JSON file named by ``LOAD_DATA_FILE``:
``{"consumers": [{"email", "password"}], "purposes": [slug], "partners": [{"client_id",
"client_secret", "subjects": [subject_id], "categories": {purpose: [category slug]}}]}``.

Every request is named by its endpoint group (``consumer: consents``, ``partner: consent check``)
so that the statistics come out per group. Each simulated client sends its own address in
``X-Forwarded-For`` (documentation ranges), as a load balancer would for real visitors: the run is
started with ``TRUSTED_PROXY_COUNT=1``, so allauth's per-address login limit (30 a minute) counts
each consumer separately instead of all 50 as one address.
"""

import itertools
import json
import os
import random
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

CONSUMERS = int(os.environ.get("LOAD_CONSUMERS", "50"))
PARTNERS = int(os.environ.get("LOAD_PARTNERS", "4"))
INGEST_BATCH = 50
# How long the sign-ins may take before the measured window starts anyway.
WARMUP_LIMIT_S = 600
_ready = {"users": 0}
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _csrf(html: str | None) -> str:
    """The CSRF token of the page's first form (the cookie alone is not enough: Django wants both)."""
    match = CSRF_INPUT.search(html or "")
    return match.group(1) if match else ""


@events.test_start.add_listener
def _measured_window(environment: Environment, **_kwargs: Any) -> None:
    """With LOAD_DURATION set (bench/load.py): measure that many seconds once every user has signed in.

    Sign-ins hash passwords (hundreds of ms of CPU each, on purpose) and, with 50 at once, hold both
    gunicorn workers for a while: that start-up is recorded apart, in LOAD_WARMUP_FILE, and the
    statistics restart from zero for the steady state the targets are about.
    """
    if os.environ.get("LOAD_DURATION"):
        gevent.spawn(_window, environment, int(os.environ["LOAD_DURATION"]), os.environ["LOAD_WARMUP_FILE"])


def _window(environment: Environment, duration: int, warmup_file: str) -> None:
    runner = environment.runner
    assert runner is not None
    started = time.monotonic()
    while _ready["users"] < CONSUMERS + PARTNERS and time.monotonic() - started < WARMUP_LIMIT_S:
        gevent.sleep(0.5)
    warmup = {
        "seconds": round(time.monotonic() - started, 1),
        "groups": {
            f"{entry.method} {entry.name}": {
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "p50": entry.get_response_time_percentile(0.5),
                "p95": entry.get_response_time_percentile(0.95),
            }
            for entry in runner.stats.entries.values()
        },
        "errors": [
            f"{error.occurrences} x {error.method} {error.name}: {error.error}"
            for error in runner.stats.errors.values()
        ],
    }
    with open(warmup_file, "w") as handle:
        json.dump(warmup, handle)
    runner.stats.reset_all()
    gevent.sleep(duration)
    runner.quit()


def _data() -> dict[str, Any]:
    with open(os.environ["LOAD_DATA_FILE"]) as handle:
        return json.load(handle)


def _secure_cookies_over_http(user: FastHttpUser) -> None:
    # Production settings mark the session and CSRF cookies Secure; browsers still send them to
    # http://localhost (a secure context), Python's cookie jar only over https unless told so.
    # (FastHttpUser: its one cookie jar is used as is; HttpUser's requests merges the cookies into
    # a fresh jar with the default policy for each request, so the policy cannot be changed there.)
    user.client.cookiejar.set_policy(DefaultCookiePolicy(secure_protocols=("https", "wss", "http")))


class ConsumerUser(FastHttpUser):
    """A consumer who signs in through allauth, reads their pages and gives or withdraws consents."""

    fixed_count = CONSUMERS
    wait_time = between(2, 8)
    _numbers = itertools.count()

    def on_start(self) -> None:
        number = next(self._numbers)
        data = _data()
        account = data["consumers"][number % len(data["consumers"])]
        self.purposes: list[str] = data["purposes"]
        # What this consumer last did per purpose; unknown at first, so the first change is a grant.
        self.granted: dict[str, bool] = {}
        self.headers = {"X-Forwarded-For": f"198.51.100.{number % 250 + 1}"}
        _secure_cookies_over_http(self)
        page = self.client.get("/accounts/login/", headers=self.headers, name="consumer: login page")
        with self.client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": _csrf(page.text), "login": account["email"], "password": account["password"]},
            headers=self.headers,
            name="consumer: log in",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            # Signed in: a redirect away from the form; refused: the form again (200) or an error.
            if response.status_code != 302 or "/accounts/" in (response.headers.get("location") or ""):
                response.failure(f"log in refused ({response.status_code})")
        _ready["users"] += 1

    def _page(self, path: str, group: str) -> str:
        return self.client.get(path, headers=self.headers, name=f"consumer: {group}").text or ""

    @task(3)
    def dashboard(self) -> None:
        self._page("/", "dashboard")

    @task(3)
    def consents(self) -> None:
        self._page("/consents/", "consents")

    @task(1)
    def activity(self) -> None:
        self._page("/activity/", "activity")

    @task(2)
    def access(self) -> None:
        self._page("/access/", "access")
        self._page("/access/events/", "access")

    @task(1)
    def receipts(self) -> None:
        self._page("/consents/receipts/", "receipts")

    @task(2)
    def change_consent(self) -> None:
        """Grant a consent not given, or withdraw one given, as the consents page's buttons do (htmx)."""
        token = _csrf(self._page("/consents/", "consents"))
        if not token:
            return  # the page did not come (already counted as its failure): nothing to click on
        slug = random.choice(self.purposes)
        granted = self.granted.get(slug, False)
        action, fields = ("withdraw", {"note": "load test"}) if granted else ("grant", {})
        with self.client.post(
            f"/consents/{slug}/{action}/",
            data={"csrfmiddlewaretoken": token, **fields},
            headers={**self.headers, "HX-Request": "true"},
            name=f"consumer: {action}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{action} answered {response.status_code}")
        self.granted[slug] = not granted


class PartnerUser(FastHttpUser):
    """A partner's system: checks consent before each use, reports accesses in batches, reads its feed."""

    fixed_count = PARTNERS
    wait_time = between(0.1, 0.5)
    _numbers = itertools.count()

    def on_start(self) -> None:
        number = next(self._numbers)
        partner = _data()["partners"][number % PARTNERS]
        self.subjects: list[str] = partner["subjects"]
        self.categories: dict[str, list[str]] = partner["categories"]
        self.cursor = ""
        self.headers = {"X-Forwarded-For": f"203.0.113.{number % 250 + 1}"}
        response = self.client.post(
            "/oauth/token/",
            data={"grant_type": "client_credentials"},
            auth=(partner["client_id"], partner["client_secret"]),
            headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"},
            name="partner: token",
        )
        token = response.json().get("access_token", "") if response.ok else ""
        self.headers["Authorization"] = f"Bearer {token}"
        _ready["users"] += 1

    @task(10)
    def consent_check(self) -> None:
        subject = random.choice(self.subjects)
        purpose = random.choice(list(self.categories))
        self.client.get(
            f"/api/v1/subjects/{subject}/consents/{purpose}", headers=self.headers, name="partner: consent check"
        )

    @task(2)
    def ingest(self) -> None:
        now = datetime.now(UTC)
        events = []
        for n in range(INGEST_BATCH):
            purpose = random.choice(list(self.categories))
            events.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "subject_id": random.choice(self.subjects),
                    "purpose": purpose,
                    "categories": self.categories[purpose][:2],
                    "accessed_at": (now - timedelta(seconds=n)).isoformat(),
                    "action": "read",
                    "detail": "Load test",
                }
            )
        self.client.post(
            "/api/v1/access-events", json={"events": events}, headers=self.headers, name="partner: access ingest"
        )

    @task(2)
    def feed(self) -> None:
        query = f"?after={self.cursor}&limit=100" if self.cursor else "?limit=100"
        response = self.client.get(f"/api/v1/events{query}", headers=self.headers, name="partner: event feed")
        # A page with events is JSON with the next cursor; an empty feed answers without a body.
        if response.status_code == 200 and response.content:
            self.cursor = json.loads(response.content).get("next_cursor") or self.cursor
