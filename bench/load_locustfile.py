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
import uuid
from datetime import UTC, datetime, timedelta
from http.cookiejar import DefaultCookiePolicy
from typing import Any

from locust import HttpUser, between, task

CONSUMERS = int(os.environ.get("LOAD_CONSUMERS", "50"))
PARTNERS = int(os.environ.get("LOAD_PARTNERS", "4"))
INGEST_BATCH = 50
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _data() -> dict[str, Any]:
    with open(os.environ["LOAD_DATA_FILE"]) as handle:
        return json.load(handle)


def _secure_cookies_over_http(user: HttpUser) -> None:
    # Production settings mark the session and CSRF cookies Secure; browsers still send them to
    # http://localhost (a secure context), Python's cookie jar only over https unless told so.
    user.client.cookies.set_policy(DefaultCookiePolicy(secure_protocols=("https", "wss", "http")))


class ConsumerUser(HttpUser):
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
        self.client.headers["X-Forwarded-For"] = f"198.51.100.{number % 250 + 1}"
        _secure_cookies_over_http(self)
        page = self.client.get("/accounts/login/", name="consumer: login page")
        token = CSRF_INPUT.search(page.text)
        with self.client.post(
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "login": account["email"],
                "password": account["password"],
            },
            name="consumer: log in",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or "/accounts/login/" in response.url:
                response.failure(f"log in refused ({response.status_code})")

    @task(3)
    def dashboard(self) -> None:
        self.client.get("/", name="consumer: dashboard")

    @task(3)
    def consents(self) -> None:
        self.client.get("/consents/", name="consumer: consents")

    @task(1)
    def activity(self) -> None:
        self.client.get("/activity/", name="consumer: activity")

    @task(2)
    def access(self) -> None:
        self.client.get("/access/", name="consumer: access")
        self.client.get("/access/events/", name="consumer: access")

    @task(1)
    def receipts(self) -> None:
        self.client.get("/consents/receipts/", name="consumer: receipts")

    @task(2)
    def change_consent(self) -> None:
        """Grant a consent not given, or withdraw one given, from the consents page's form."""
        page = self.client.get("/consents/", name="consumer: consents")
        token = CSRF_INPUT.search(page.text)
        slug = random.choice(self.purposes)  # noqa: S311 (load pattern, not security)
        granted = self.granted.get(slug, False)
        action, data = ("withdraw", {"note": "load test"}) if granted else ("grant", {})
        with self.client.post(
            f"/consents/{slug}/{action}/",
            data={"csrfmiddlewaretoken": token.group(1) if token else "", **data},
            name=f"consumer: {action}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{action} answered {response.status_code}")
        self.granted[slug] = not granted


class PartnerUser(HttpUser):
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
        self.client.headers["X-Forwarded-For"] = f"203.0.113.{number % 250 + 1}"
        response = self.client.post(
            "/oauth/token/",
            data={"grant_type": "client_credentials"},
            auth=(partner["client_id"], partner["client_secret"]),
            name="partner: token",
        )
        token = response.json().get("access_token", "") if response.ok else ""
        self.client.headers["Authorization"] = f"Bearer {token}"

    @task(10)
    def consent_check(self) -> None:
        subject = random.choice(self.subjects)  # noqa: S311 (load pattern, not security)
        purpose = random.choice(list(self.categories))  # noqa: S311
        self.client.get(f"/api/v1/subjects/{subject}/consents/{purpose}", name="partner: consent check")

    @task(2)
    def ingest(self) -> None:
        now = datetime.now(UTC)
        events = []
        for n in range(INGEST_BATCH):
            purpose = random.choice(list(self.categories))  # noqa: S311
            events.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "subject_id": random.choice(self.subjects),  # noqa: S311
                    "purpose": purpose,
                    "categories": self.categories[purpose][:2],
                    "accessed_at": (now - timedelta(seconds=n)).isoformat(),
                    "action": "read",
                    "detail": "Load test",
                }
            )
        self.client.post("/api/v1/access-events", json={"events": events}, name="partner: access ingest")

    @task(2)
    def feed(self) -> None:
        response = self.client.get(
            "/api/v1/events", params={"after": self.cursor, "limit": 100}, name="partner: event feed"
        )
        if response.ok:
            self.cursor = response.json().get("next_cursor") or self.cursor
