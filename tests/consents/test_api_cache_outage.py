"""The partner API keeps answering when the shared cache (Redis) is down: its rate limits fail open.

The cache here is Django's real Redis backend pointed at a port where nothing answers: either
nothing listens (connection refused, as when Redis is stopped) or a socket accepts connections and
never replies (as behind a dead network path, ended by the socket timeout).
"""

import logging
import socket
import time
from collections.abc import Iterator

import pytest
import time_machine
from django.utils import timezone
from prometheus_client import REGISTRY

from consents.api import auth
from tests.conftest import oauth_token
from tests.factories import outbox_event_create

COUNTER = "portal_throttle_cache_errors_total"


def errors(scope: str) -> float:
    return REGISTRY.get_sample_value(COUNTER, {"scope": scope}) or 0.0


@pytest.fixture(params=["refused", "unanswering"])
def cache_down(request, settings, api_world) -> Iterator[str]:
    """Tokens are issued first (with the cache up); then every cache call fails."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if request.param == "refused":
        sock.close()
    else:
        sock.listen(16)  # the kernel completes connections; nobody ever reads or answers
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    auth.process_state_clear()
    yield request.param
    sock.close()


def check(client, world):
    url = f"/api/v1/subjects/{world.sid('a', 'alice')}/consents/marketing"
    return client.get(url, headers=world.a.headers)


def ack(client, partner, event_id):
    return client.post(
        f"/api/v1/events/{event_id}/ack",
        {"status": "processed", "detail": ""},
        content_type="application/json",
        headers=partner.headers,
    )


def test_consent_check_and_ack_answer_normally_and_the_outage_is_logged_and_counted(
    client, api_world, cache_down, caplog, settings
):
    settings.PARTNER_API_RATE = "60/minute"  # small enough that every request goes to the shared counter
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    before = errors("partner_api")
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="consents.api.auth"):
        checked = check(client, api_world)
        acked = ack(client, api_world.a, event.id)
        again = check(client, api_world)

    assert checked.status_code == 200, checked.content
    assert checked.json()["granted"] is True
    assert acked.status_code == 200, acked.content
    assert acked.json()["status"] == "processed"
    assert again.status_code == 200
    event.refresh_from_db()
    assert event.ack_status == "processed"
    # One failed round trip (at most the 1 s socket timeout), then the cache is left alone a while.
    assert time.monotonic() - started < 5
    assert errors("partner_api") == before + 1
    (record,) = [r for r in caplog.records if r.name == "consents.api.auth"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("rate limit partner_api: the cache is unavailable")
    for personal in (api_world.sid("a", "alice"), api_world.a.partner.slug, str(api_world.a.partner.pk) + ":"):
        assert personal not in message


def test_every_retry_of_the_cache_is_counted(client, api_world, cache_down, monkeypatch):
    monkeypatch.setattr(auth, "CACHE_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(auth, "SYNC_SECONDS", 0.0)
    before = errors("partner_api")

    for _ in range(3):
        assert check(client, api_world).status_code == 200

    assert errors("partner_api") == before + 3


def test_while_the_cache_is_down_each_process_still_counts_its_own_requests(client, api_world, cache_down, settings):
    settings.PARTNER_API_RATE = "3/minute"

    # Four requests inside one rate window: an unanswering cache costs a second a request, which
    # from hh:mm:59 would carry the last one into the next minute's window.
    with time_machine.travel(timezone.now().replace(second=1), tick=False):
        statuses = [check(client, api_world).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_token_endpoint_answers_while_the_cache_is_down(client, api_world, cache_down):
    # The client's window (60/minute) adds every request to the shared count; the address's
    # (300/minute) in batches of 3. Whichever tries the cache first finds it down.
    before = errors("oauth_ip") + errors("oauth_client")

    response = oauth_token(client, api_world.a.credential, api_world.a.secret)

    assert response.status_code == 200, response.content
    assert response.json()["access_token"]
    assert errors("oauth_ip") + errors("oauth_client") == before + 1


def test_counts_made_during_an_outage_reach_the_shared_counter_when_the_cache_returns(db, settings, monkeypatch):
    from types import SimpleNamespace

    from tests.factories import PartnerFactory

    settings.PARTNER_API_RATE = "1000/minute"
    token = auth.PartnerToken(1, PartnerFactory().pk, 1, frozenset(), timezone.now())
    request = SimpleNamespace(auth=token)
    throttle = auth.PartnerRateThrottle()
    auth.process_state_clear()
    monkeypatch.setattr(auth, "_cache_down_until", time.monotonic() + 60)  # as after a failure

    with time_machine.travel(timezone.now().replace(second=1), tick=False):
        for _ in range(30):
            assert throttle.allow_request(request, None)  # type: ignore[arg-type]
        (window,) = auth._windows.values()
        assert window.pending == 30

        monkeypatch.setattr(auth, "_cache_down_until", 0.0)
        assert throttle.allow_request(request, None)  # type: ignore[arg-type]
        assert (window.known, window.pending) == (31, 0)
