from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import Actor
from consents.middleware import SESSION_KEY, GlobalPrivacyControlMiddleware
from consents.models import Consent, ConsentReceipt, ConsentStatus, GpcSignal
from consents.services.consents import consent_grant
from tests.factories import StaffFactory

GPC = {"Sec-GPC": "1"}


def _grant(user, purpose):
    return consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))


def _statuses(user) -> dict[str, tuple[str, str]]:
    return {c.purpose.slug: (c.status, c.method) for c in Consent.objects.filter(user=user).select_related("purpose")}


def test_gpc_signal_withdraws_covered_purposes_with_method_gpc(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["ads"])
    _grant(consumer, consent_catalogue["offers"])
    consumer_client.get(reverse("consents:list"), headers=GPC)
    assert _statuses(consumer) == {
        "advertising-partners": ("revoked", "gpc"),
        "personalised-offers": ("granted", "web"),
    }
    receipt = ConsentReceipt.objects.filter(user=consumer, consent__purpose=consent_catalogue["ads"]).first()
    assert receipt.event == "revoked"
    assert receipt.payload["collectionMethod"] == "gpc"
    assert receipt.payload["services"][0]["purposes"][0]["consentType"] == "OPT-OUT-SIGNAL"
    signal = GpcSignal.objects.get(user=consumer)
    assert signal.purposes == ["advertising-partners"]
    assert AuditEvent.objects.filter(subject=consumer, action="gpc.honoured").count() == 1


def test_gpc_signal_records_a_refusal_for_a_covered_purpose_never_decided(consumer_client, consumer, consent_catalogue):
    consumer_client.get("/", headers=GPC)
    consent = Consent.objects.get(user=consumer)
    assert consent.purpose == consent_catalogue["ads"]
    assert consent.status == ConsentStatus.REVOKED
    assert consent.method == "gpc"
    assert consent.granted_at is None
    card = consumer_client.get(reverse("consents:list")).content.decode()
    assert "Refused on" in card
    assert "by your browser's Global Privacy Control signal" in card


def test_gpc_signal_is_honoured_once_so_a_later_explicit_grant_stands(consumer_client, consumer, consent_catalogue):
    consumer_client.get("/", headers=GPC)
    consumer_client.post(reverse("consents:grant", args=["advertising-partners"]), headers=GPC)
    consumer_client.get(reverse("consents:list"), headers=GPC)
    assert _statuses(consumer)["advertising-partners"] == ("granted", "web")

    fresh = Client()
    fresh.force_login(consumer)
    fresh.get("/", headers=GPC)
    assert _statuses(consumer)["advertising-partners"] == ("granted", "web"), "a new session does not re-apply it"
    assert GpcSignal.objects.filter(user=consumer).count() == 1
    assert AuditEvent.objects.filter(subject=consumer, action="gpc.honoured").count() == 1


def test_consents_page_and_dashboard_say_the_signal_was_honoured(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["ads"])
    consumer_client.get("/", headers=GPC)
    for url in ["/", reverse("consents:list")]:
        body = consumer_client.get(url).content.decode()
        assert "Your browser sent a Global Privacy Control signal, and we honoured it on" in body
        assert "We opted you out of: Sharing with advertising partners." in body


def test_without_the_signal_nothing_changes(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["ads"])
    consumer_client.get("/", headers={"Sec-GPC": "0"})
    consumer_client.get(reverse("consents:list"))
    assert _statuses(consumer) == {"advertising-partners": ("granted", "web")}
    assert not GpcSignal.objects.exists()
    assert "Global Privacy Control signal, and we honoured it" not in consumer_client.get("/").content.decode()


def test_gpc_signal_from_staff_or_visitors_changes_nothing(client, consent_catalogue):
    staff = StaffFactory(email="staffer@example.com")
    client.get("/", headers=GPC)
    client.force_login(staff)
    client.get("/", headers=GPC)
    assert not GpcSignal.objects.exists()
    assert not Consent.objects.exists()


def test_gpc_signal_of_one_consumer_leaves_other_consumers_alone(
    consumer_client, consumer, other_consumer, consent_catalogue
):
    _grant(other_consumer, consent_catalogue["ads"])
    consumer_client.get("/", headers=GPC)
    assert _statuses(other_consumer) == {"advertising-partners": ("granted", "web")}
    assert not GpcSignal.objects.filter(user=other_consumer).exists()


def _run_middleware(user, headers: dict[str, str], session: dict) -> None:
    request = RequestFactory().get("/", headers=headers)
    request.user = user
    request.session = session
    GlobalPrivacyControlMiddleware(lambda r: HttpResponse())(request)


def test_middleware_costs_no_query_without_the_header_for_visitors_staff_or_once_honoured(
    consumer, consent_catalogue, django_assert_num_queries
):
    staff = StaffFactory(email="staffer@example.com")
    with django_assert_num_queries(0):
        _run_middleware(consumer, {}, {})
        _run_middleware(AnonymousUser(), GPC, {})
        _run_middleware(staff, GPC, {})
        _run_middleware(consumer, GPC, {SESSION_KEY: consumer.pk})
    session: dict = {}
    _run_middleware(consumer, GPC, session)
    assert session == {SESSION_KEY: consumer.pk}
    assert GpcSignal.objects.filter(user=consumer).exists()
