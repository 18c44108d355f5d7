import base64
import hashlib
import json

import pytest
from django.utils import translation
from joserfc import jws
from joserfc.jwk import OKPKey

from audit.services import Actor
from audit.signing import SignatureInvalid, document_verify, public_jwks
from consents.models import ConsentReceipt
from consents.services.consents import consent_grant, consent_revoke
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def research(db):
    health = DataCategoryFactory(slug="health-purchases", name="Health-related purchases", sensitive=True)
    transactions = DataCategoryFactory(slug="transactions", name="Transaction history")
    purpose = PurposeFactory(
        slug="research",
        name="Research with affiliates",
        category="research",
        default_duration_type="time_bound",
        default_period_days=180,
        notice__retention="Deleted when the study ends, at most 18 months",
        notice__categories=[transactions, health],
    )
    SharingFactory(partner=PartnerFactory(name="Meridian Labs", kind="affiliate", country="NL"), purpose=purpose)
    SharingFactory(
        partner=PartnerFactory(name="Atlas Insights", kind="service_provider", country="IE"), purpose=purpose
    )
    return purpose


@pytest.fixture
def granted(consumer, research):
    consent = consent_grant(user=consumer, purpose=research, actor=Actor.consumer(consumer))
    return ConsentReceipt.objects.get(consent=consent, event="granted")


def test_grant_receipt_carries_the_kantara_and_iso_27560_fields(granted, consumer, research, settings):
    payload = granted.payload
    consent = granted.consent

    assert payload["version"] == "KI-CR-v1.1.0"
    assert payload["jurisdiction"] == settings.PORTAL_CONTROLLER["jurisdiction"]
    assert payload["consentReceiptID"] == str(granted.id)
    assert payload["consentTimestamp"] == int(granted.issued_at.timestamp())
    assert payload["collectionMethod"] == "web"
    assert payload["language"] == "en"
    assert payload["policyUrl"] == settings.PORTAL_CONTROLLER["policy_url"]
    assert payload["event"] == "granted"
    assert payload["state"] == "granted"
    (controller,) = payload["piiControllers"]
    assert controller["piiController"] == settings.PORTAL_CONTROLLER["name"]
    assert controller["email"] == settings.PORTAL_CONTROLLER["email"]
    assert controller["piiControllerUrl"] == settings.SITE_URL
    assert {"contact", "address"} <= controller.keys()

    (service,) = payload["services"]
    assert service["service"] == "Research with affiliates"
    (purpose,) = service["purposes"]
    assert purpose["purposeId"] == "research"
    assert purpose["purpose"] == research.current_version.description
    assert purpose["purposeCategory"] == ["research"]
    assert purpose["legalBasis"] == "consent"
    assert purpose["consentType"] == "EXPLICIT"
    assert purpose["noticeVersion"] == 1
    assert purpose["piiCategory"] == ["health-purchases", "transactions"]
    assert purpose["primaryPurpose"] is False
    assert purpose["termination"] == "Deleted when the study ends, at most 18 months"
    assert purpose["thirdPartyDisclosure"] is True
    assert purpose["thirdPartyName"] == "Atlas Insights, Meridian Labs"
    assert purpose["thirdParties"] == [
        {"name": "Atlas Insights", "kind": "service_provider", "country": "IE"},
        {"name": "Meridian Labs", "kind": "affiliate", "country": "NL"},
    ]
    assert payload["sensitive"] is True
    assert payload["spiCat"] == ["health-purchases"]

    assert payload["validity"] == {
        "durationType": "time_bound",
        "periodDays": 180,
        "grantedAt": consent.granted_at.isoformat(),
        "expiresAt": consent.expires_at.isoformat(),
        "revokedAt": None,
    }
    assert payload["withdrawal"]["method"] == "web"
    assert payload["withdrawal"]["url"] == settings.SITE_URL + "/consents/"
    assert payload["withdrawal"]["reason"] is None


def test_principal_id_is_pseudonymous_and_stable(granted, consumer, research):
    principal = granted.payload["piiPrincipalId"]
    revoked = consent_revoke(user=consumer, purpose=research, actor=Actor.consumer(consumer))

    assert principal.startswith("urn:privacy-portal:principal:")
    assert consumer.email not in json.dumps(granted.payload)
    assert str(consumer.pk) != principal.rsplit(":", 1)[1]
    assert ConsentReceipt.objects.get(consent=revoked, event="revoked").payload["piiPrincipalId"] == principal


def test_revoke_receipt_records_withdrawal(granted, consumer, research):
    consent = consent_revoke(user=consumer, purpose=research, actor=Actor.consumer(consumer), note="Study over")
    receipt = ConsentReceipt.objects.get(consent=consent, event="revoked")

    assert receipt.payload["state"] == "revoked"
    assert receipt.payload["validity"]["revokedAt"] == consent.revoked_at.isoformat()
    assert receipt.payload["withdrawal"]["reason"] == "user_action"
    assert receipt.payload["withdrawal"]["initiator"] == "consumer"
    assert "Study over" not in json.dumps(receipt.payload)


def test_receipt_names_the_language_consent_was_obtained_in(consumer, db):
    purpose = PurposeFactory()
    with translation.override("zh-hans"):
        consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    assert ConsentReceipt.objects.get(consent=consent).payload["language"] == "zh"


def test_receipt_without_partners_discloses_to_no_third_party(consumer, db):
    purpose = PurposeFactory()
    consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    (item,) = ConsentReceipt.objects.get(consent=consent).payload["services"][0]["purposes"]

    assert item["thirdPartyDisclosure"] is False
    assert item["thirdPartyName"] == ""


def test_receipt_verifies_against_the_published_jwks(granted):
    jwks = public_jwks()

    assert document_verify(granted.jws, jwks) == granted.payload
    (key,) = jwks["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "Ed25519"
    assert "d" not in key
    header = json.loads(base64.urlsafe_b64decode(granted.jws.split(".")[0] + "=="))
    assert header["kid"] == key["kid"]
    assert granted.sha256 == hashlib.sha256(granted.jws.encode()).hexdigest()


def test_modified_payload_fails_verification(granted):
    header, _payload, signature = granted.jws.split(".")
    forged = dict(granted.payload, state="revoked")
    body = _b64(json.dumps(forged, sort_keys=True, separators=(",", ":")).encode())

    with pytest.raises(SignatureInvalid):
        document_verify(f"{header}.{body}.{signature}", public_jwks())


def test_modified_signature_fails_verification(granted):
    header, body, signature = granted.jws.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 0x01

    with pytest.raises(SignatureInvalid):
        document_verify(f"{header}.{body}.{_b64(bytes(raw))}", public_jwks())


def test_receipt_does_not_verify_against_another_key(granted):
    other = OKPKey.generate_key("Ed25519")
    same_kid = public_jwks()["keys"][0]["kid"]
    foreign = {"keys": [other.as_dict(private=False) | {"kid": same_kid, "use": "sig", "alg": "Ed25519"}]}

    with pytest.raises(SignatureInvalid):
        document_verify(granted.jws, foreign)


def test_receipt_signed_by_another_key_does_not_verify_against_ours(granted):
    other = OKPKey.generate_key("Ed25519")
    token = jws.serialize_compact(
        {"alg": "Ed25519", "kid": public_jwks()["keys"][0]["kid"]},
        json.dumps(granted.payload).encode(),
        other,
        ["Ed25519"],
    )

    with pytest.raises(SignatureInvalid):
        document_verify(token)
