"""Issue 14's in-process fault scenarios (``bench/faults_inprocess.py``), reduced to run in the suite.

Each test runs its scenario on committed data (threads need their own connections) and asserts
nothing was lost or applied twice, plus the property the scenario is about. The threaded ones mean
most on PostgreSQL, where the threads' transactions really overlap; on SQLite they take turns.
"""

import time

import pytest

from audit.services import Actor
from bench.faults_inprocess import (
    SCENARIOS,
    DeliverySlots,
    Receiver,
    duplicate_submits,
    no_stale_grants,
    partner_faults,
    rollback_atomicity,
)
from consents.services.consents import consent_revoke
from consents.services.delivery import MAX_ATTEMPTS
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_rolled_back_changes_leave_no_trace_and_committed_ones_reach_their_partners():
    outcome = rollback_atomicity(changes=300)

    details = outcome.details
    assert (outcome.lost, outcome.duplicates_applied) == (0, 0), details
    assert (outcome.faults, details["committed"]) == (30, 270)
    assert details["outbox_rows"] == details["outbox_expected"] > details["committed"]
    assert details["history_rows"] == details["committed"]
    assert details["undelivered"] == 0
    assert details["rolled_back_traces"] == 0
    assert details["partner_none_received"] == 0


def test_partner_faults_retry_on_schedule_dead_letter_and_410_disables():
    outcome = partner_faults(withdrawals=3, client_timeout=0.5, slow_s=0.3)

    details = outcome.details
    assert (outcome.lost, outcome.duplicates_applied) == (0, 0), details
    assert details["statuses"] == {
        "healthy:delivered": 3,
        "slow:delivered": 3,
        "broken:dead": 3,
        "timeout:dead": 3,
        "reset:dead": 3,
        "gone:no_endpoint": 3,
    }
    attempts = details["attempts_per_event"]
    assert attempts["broken"] == attempts["timeout"] == attempts["reset"] == [MAX_ATTEMPTS]
    assert attempts["healthy"] == attempts["slow"] == attempts["gone"] == [1]
    assert details["retries_early"] == 0
    assert details["gone_disabled"]
    assert details["received"]["gone"] < 3, "the disabled webhook kept receiving"
    assert details["healthy_delivered_while_slow_in_flight"] > 0, "the healthy partner waited for the slow ones"
    # After the partners recover, re-driving dead letters and feed-only events delivers everything.
    assert details["final_statuses"] == {"delivered": 18}


@pytest.fixture
def loopback(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 5.0


def _partners_with_events(receivers, per_partner):
    """One partner per receiver on one purpose, and ``per_partner`` refusals: their events queue in that order."""
    purpose = PurposeFactory()
    for receiver in receivers:
        SharingFactory(partner=PartnerFactory(webhook_url=receiver.url), purpose=purpose)
    for _ in range(per_partner):
        user = UserFactory()
        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))


def test_a_slow_partner_holds_one_slot_while_the_other_delivers_to_healthy_partners(loopback, settings):
    # Slow, not timed out: on a loaded machine a 2 s answer must not come near the client's timeout.
    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0
    slow, healthy = Receiver("slow"), Receiver("healthy")
    slow.behave = ("slow", 2.0)
    slots = DeliverySlots(2)
    try:
        with slots.installed():
            _partners_with_events([slow, healthy], per_partner=1)  # queued: slow, then healthy
            for _ in range(5):  # and five more healthy partners' events behind them
                _partners_with_events([healthy], per_partner=1)
            started = time.monotonic()
            slots.drain()
    finally:
        slow.close()
        healthy.close()
    assert len(slow.deliveries) == 1, _deliveries_described(slow)
    [slow_delivery] = slow.deliveries
    assert len(healthy.applied) == 6
    assert all(d.answered < slow_delivery.answered for d in healthy.deliveries)
    assert slow_delivery.answered - started >= 2.0


def _deliveries_described(receiver):
    """What a receiver got and what the outbox recorded of each attempt, for an assertion's message."""
    from consents.models import DeliveryAttempt

    got = [(d.webhook_id, d.status, round(d.answered - d.started, 2)) for d in receiver.deliveries]
    attempts = list(
        DeliveryAttempt.objects.filter(event_id__in={d.webhook_id for d in receiver.deliveries})
        .order_by("attempted_at")
        .values_list("event_id", "status_code", "duration_ms", "error")
    )
    return f"received {got}; attempts recorded {attempts}"


def test_a_slow_partners_backlog_does_not_hold_every_slot(loopback, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 1  # below the two slots, as the setting's comment asks
    slow, healthy = Receiver("slow"), Receiver("healthy")
    slow.behave = ("slow", 1.0)
    slots = DeliverySlots(2)
    try:
        with slots.installed():
            slow_purpose, healthy_purpose = PurposeFactory(), PurposeFactory()
            SharingFactory(partner=PartnerFactory(webhook_url=slow.url), purpose=slow_purpose)
            SharingFactory(partner=PartnerFactory(webhook_url=healthy.url), purpose=healthy_purpose)
            for purpose in [slow_purpose] * 4 + [healthy_purpose]:  # queued: four slow, then one healthy
                user = UserFactory()
                consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
            slots.drain()
    finally:
        slow.close()
        healthy.close()
    [delivery] = healthy.deliveries
    first_slow = min(d.started for d in slow.deliveries)
    assert delivery.answered - first_slow < 0.5, "the healthy partner waited for the slow one's backlog"
    assert len(slow.applied) == 4, "each finished slow attempt handed its place to the next deferred event"


def test_no_check_answers_granted_after_the_withdrawal_committed():
    outcome = no_stale_grants(consumers=40, rate=0, duration_s=3)

    details = outcome.details
    assert outcome.lost == 0, details
    assert details["error_count"] == 0
    assert details["withdrawals"] == 40
    assert details["checks_after_a_withdrawal"] > 0, "no check came after a withdrawal: the test proved nothing"


def test_duplicate_submits_change_record_and_announce_once():
    outcome = duplicate_submits(rounds=1)

    assert (outcome.lost, outcome.duplicates_applied) == (0, 0), outcome.details
    assert outcome.details["expected"] == outcome.details["actual"]


def test_each_scenario_returns_and_prints_the_figures_bench_faults_reports(capsys):
    figures = SCENARIOS["duplicate_submits"](True)

    assert set(figures) == {"scenario", "load", "faults", "lost", "duplicates_applied", "recovery_s"}
    assert set(SCENARIOS) == {"rollback_atomicity", "partner_faults", "no_stale_grants", "duplicate_submits"}
    assert capsys.readouterr().out == (
        f"scenario=duplicate_submits load={figures['load']} faults={figures['faults']} lost=0"
        " duplicates_applied=0 recovery_s=0.0\n"
    )
