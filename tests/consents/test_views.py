import re
import uuid

import httpx
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from audit.services import Actor
from audit.signing import SignatureInvalid, document_verify
from consents.models import Consent, ConsentReceipt, ConsentStatus, Purpose
from consents.services.consents import consent_grant, consent_revoke
from consents.services.notices import purpose_version_publish
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory, notice_translations

HTMX = {"HX-Request": "true"}


def _grant(user, purpose):
    return consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _card_html(body: str, slug: str) -> str:
    match = re.search(rf'<section class="card consent-card[^"]*" id="purpose-{slug}".*?</section>', body, re.S)
    assert match, f"no card for {slug}"
    return match.group(0)


# The consents page


def test_consents_page_shows_everything_needed_for_an_informed_choice(consumer_client, consent_catalogue):
    response = consumer_client.get(reverse("consents:list"))
    assert response.status_code == 200
    card = _card_html(response.content.decode(), "personalised-offers")
    assert "We suggest offers that fit how you use your account." in card
    assert "Contact details" in card
    assert re.search(r"Transaction history <span class=\"badge badge-warn\">sensitive</span>", card)
    assert "AdCo Media" in card
    assert "Advertiser" in card
    assert "United States" in card
    assert "Mailer GmbH" in card
    assert "Service provider" in card
    assert "Germany" in card
    assert "Until you withdraw, then 30 days" in card
    assert "Your consent" in card, "legal basis"
    assert "Version 1, published" in card
    assert "Not decided" in card
    assert "Grant consent" in card
    assert "Withdraw consent" not in card


def test_consents_page_pre_ticks_nothing(consumer_client, consent_catalogue):
    body = consumer_client.get(reverse("consents:list")).content.decode()
    assert "checked" not in body
    assert "badge-granted" not in body
    assert Consent.objects.count() == 0, "looking changes nothing"


def test_essential_purpose_is_shown_with_its_basis_but_cannot_be_toggled(consumer_client, consent_catalogue):
    body = consumer_client.get(reverse("consents:list")).content.decode()
    card = _card_html(body, "fraud-prevention")
    assert "Required by law" in card
    assert "does not rely on your consent" in card
    assert "<form" not in card
    assert reverse("consents:withdraw", args=["fraud-prevention"]) not in card


def test_time_bound_purpose_shows_its_period_before_granting_and_the_expiry_after(consumer_client, consent_catalogue):
    card = _card_html(consumer_client.get(reverse("consents:list")).content.decode(), "credit-check")
    assert "A limited period of 3 months, then it ends by itself." in card
    assert "If you agree now, your consent ends on" in card

    consumer_client.post(reverse("consents:grant", args=["credit-check"]))
    card = _card_html(consumer_client.get(reverse("consents:list")).content.decode(), "credit-check")
    assert "Granted since" in card
    assert re.search(r"Ends on .* \(in (2|3)\smonths", card)


def test_consents_page_queries_do_not_grow_with_purposes_and_partners(
    consumer_client, consumer, consent_catalogue, django_assert_max_num_queries
):
    _grant(consumer, consent_catalogue["offers"])
    with django_assert_max_num_queries(10) as few:
        consumer_client.get(reverse("consents:list"))
    for n in range(8):
        category = DataCategoryFactory(slug=f"extra-{n}")
        purpose = PurposeFactory(slug=f"extra-purpose-{n}", notice__categories=[category])
        for m in range(3):
            SharingFactory(partner=PartnerFactory(slug=f"extra-partner-{n}-{m}"), purpose=purpose)
        _grant(consumer, purpose)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = consumer_client.get(reverse("consents:list"))
    # The catalogue's four, the eight added, and our staff's customer-support purpose (migration 0005).
    assert response.content.decode().count('class="card consent-card') == 13


# Grant and withdraw, without JavaScript and with htmx


def test_grant_without_javascript_redirects_to_the_card_with_a_message(consumer_client, consumer, consent_catalogue):
    response = consumer_client.post(reverse("consents:grant", args=["personalised-offers"]))
    assert response.status_code == 302
    assert response["Location"] == "/consents/#purpose-personalised-offers"
    assert _messages(response) == ["You gave your consent to “Personalised offers”."]
    consent = Consent.objects.get(user=consumer, purpose=consent_catalogue["offers"])
    assert consent.status == ConsentStatus.GRANTED
    assert consent.method == "web"
    assert consent.receipts.count() == 1


def test_grant_with_htmx_swaps_the_card_and_announces_the_outcome(consumer_client, consumer, consent_catalogue):
    response = consumer_client.post(reverse("consents:grant", args=["personalised-offers"]), headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    card = _card_html(body, "personalised-offers")
    assert "badge-granted" in card
    assert "Granted since" in card
    assert "Withdraw consent" in card
    assert "Grant consent" not in card
    receipt = ConsentReceipt.objects.get(user=consumer)
    assert reverse("consents:receipt_detail", args=[receipt.pk]) in card
    assert re.search(
        r'<div id="consent-live" hx-swap-oob="innerHTML">You gave your consent to “Personalised offers”.</div>', body
    )


def test_card_forms_target_the_card_and_post_without_javascript_too(consumer_client, consent_catalogue):
    card = _card_html(consumer_client.get(reverse("consents:list")).content.decode(), "personalised-offers")
    url = reverse("consents:grant", args=["personalised-offers"])
    assert f'method="post" action="{url}"' in card
    assert f'hx-post="{url}" hx-target="#purpose-personalised-offers" hx-swap="outerHTML"' in card
    assert "csrfmiddlewaretoken" in card
    body = consumer_client.get(reverse("consents:list")).content.decode()
    assert 'id="consent-live" class="visually-hidden" role="status" aria-live="polite"' in body


def test_withdraw_preview_is_its_own_page_without_javascript(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    response = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Withdraw consent</h1>" in body
    assert "Withdraw your consent to “Personalised offers”?" in body
    assert "We stop using your data for this purpose: Contact details, Transaction history." in body
    assert "<strong>AdCo Media</strong>" in body
    assert "<strong>Mailer GmbH</strong>" in body
    assert 'name="note"' in body
    assert "Confirm withdrawal" in body
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED, "the preview changes nothing"


def test_withdraw_preview_replaces_the_card_with_htmx(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    response = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]), headers=HTMX)
    body = response.content.decode()
    assert "<html" not in body
    assert body.strip().startswith('<section class="card consent-card consent-card-confirm" id="purpose-personalised')
    assert "AdCo Media" in body
    assert "Mailer GmbH" in body
    assert f'hx-get="{reverse("consents:card", args=["personalised-offers"])}"' in body, "cancel restores the card"
    assert response["Vary"].lower().count("hx-request") == 1


def test_cancelled_withdrawal_restores_the_card_with_htmx_and_the_list_without(consumer_client, consent_catalogue):
    url = reverse("consents:card", args=["personalised-offers"])
    assert _card_html(consumer_client.get(url, headers=HTMX).content.decode(), "personalised-offers")
    response = consumer_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == "/consents/#purpose-personalised-offers"


def test_withdraw_without_javascript_records_the_reason_and_redirects(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    response = consumer_client.post(
        reverse("consents:withdraw", args=["personalised-offers"]), {"note": "  Too many emails  "}
    )
    assert response.status_code == 302
    assert response["Location"] == "/consents/#purpose-personalised-offers"
    assert _messages(response) == [
        "You withdrew your consent to “Personalised offers”."
        " We are telling these partners to stop: AdCo Media, Mailer GmbH."
    ]
    consent = Consent.objects.get(user=consumer)
    assert consent.status == ConsentStatus.REVOKED
    assert consent.revocation_reason == "user_action"
    assert consent.revocation_note == "Too many emails"
    assert list(consent.receipts.values_list("event", flat=True)) == ["revoked", "granted"]


def test_withdraw_with_htmx_swaps_the_card(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["ads"])
    response = consumer_client.post(reverse("consents:withdraw", args=["advertising-partners"]), headers=HTMX)
    body = response.content.decode()
    card = _card_html(body, "advertising-partners")
    assert "badge-revoked" in card
    assert "Withdrawn since" in card
    assert "Grant consent" in card
    assert "We are telling these partners to stop: AdCo Media." in body
    assert Consent.objects.get(user=consumer).status == ConsentStatus.REVOKED


def test_withdraw_reason_that_is_too_long_is_refused_and_changes_nothing(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    response = consumer_client.post(reverse("consents:withdraw", args=["personalised-offers"]), {"note": "x" * 501})
    assert response.status_code == 400
    assert "Ensure this value has at most 500 characters" in response.content.decode()
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED


def test_withdraw_preview_of_a_purpose_without_consent_sends_back_to_the_card(consumer_client, consent_catalogue):
    response = consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]))
    assert response.status_code == 302
    assert _messages(response) == ["There is no consent to withdraw for “Personalised offers”."]


# Bad input


@pytest.mark.parametrize("action", ["grant", "withdraw"])
def test_essential_purpose_cannot_be_switched_by_a_forged_post(consumer_client, consumer, consent_catalogue, action):
    response = consumer_client.post(reverse(f"consents:{action}", args=["fraud-prevention"]))
    assert response.status_code == 302
    assert _messages(response) == [
        "“Fraud prevention” does not rely on your consent, so it cannot be switched on or off here."
    ]
    response = consumer_client.post(reverse(f"consents:{action}", args=["fraud-prevention"]), headers=HTMX)
    assert "card-note-error" in _card_html(response.content.decode(), "fraud-prevention")
    assert not Consent.objects.exists()
    assert not ConsentReceipt.objects.exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [("card", "get"), ("grant", "post"), ("withdraw", "get"), ("withdraw", "post"), ("review", "get")],
)
def test_unknown_purpose_is_not_found(consumer_client, consent_catalogue, name, method):
    response = getattr(consumer_client, method)(reverse(f"consents:{name}", args=["no-such-purpose"]))
    assert response.status_code == 404
    assert not Consent.objects.exists()


def test_unpublished_purpose_is_not_found(consumer_client, consent_catalogue):
    consent_catalogue["offers"].is_active = False
    consent_catalogue["offers"].save()
    assert consumer_client.post(reverse("consents:grant", args=["personalised-offers"])).status_code == 404
    assert not Consent.objects.exists()


def test_only_post_changes_state(consumer_client, consumer, consent_catalogue):
    assert consumer_client.get(reverse("consents:grant", args=["personalised-offers"])).status_code == 405
    _grant(consumer, consent_catalogue["offers"])
    consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]))
    assert consumer_client.put(reverse("consents:withdraw", args=["personalised-offers"])).status_code == 405
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED


def test_forged_cross_site_posts_are_refused(consumer, consent_catalogue):
    client = Client(enforce_csrf_checks=True)
    client.force_login(consumer)
    _grant(consumer, consent_catalogue["offers"])
    assert client.post(reverse("consents:grant", args=["advertising-partners"])).status_code == 403
    assert client.post(reverse("consents:withdraw", args=["personalised-offers"])).status_code == 403
    assert client.post(reverse("consents:withdraw", args=["personalised-offers"]), headers=HTMX).status_code == 403
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED
    assert Consent.objects.count() == 1


def test_a_real_form_post_with_its_csrf_token_is_accepted(consumer, consent_catalogue):
    client = Client(enforce_csrf_checks=True)
    client.force_login(consumer)
    body = client.get(reverse("consents:list")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    response = client.post(reverse("consents:grant", args=["personalised-offers"]), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED


@pytest.mark.parametrize(
    "url",
    [
        "/consents/",
        "/consents/receipts/",
        "/consents/personalised-offers/card/",
        "/consents/personalised-offers/withdraw/",
        "/consents/personalised-offers/review/",
        f"/consents/receipts/{uuid.uuid4()}/",
        f"/consents/receipts/{uuid.uuid4()}/download",
    ],
)
def test_consent_pages_require_sign_in(client, consent_catalogue, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_anonymous_grant_changes_nothing(client, consent_catalogue):
    response = client.post(reverse("consents:grant", args=["personalised-offers"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Consent.objects.exists()


# Isolation


def test_no_page_or_action_of_one_consumer_reaches_another_consumers_consents(
    consumer_client, consumer, other_consumer, consent_catalogue
):
    _grant(other_consumer, consent_catalogue["offers"])
    _grant(other_consumer, consent_catalogue["credit"])
    body = consumer_client.get(reverse("consents:list")).content.decode()
    assert "badge-granted" not in body
    assert "Granted since" not in body
    dashboard = consumer_client.get("/").content.decode()
    assert '<span class="stat">0</span> granted' in dashboard

    consumer_client.get(reverse("consents:withdraw", args=["personalised-offers"]))
    consumer_client.post(reverse("consents:withdraw", args=["personalised-offers"]))
    consumer_client.post(reverse("consents:grant", args=["advertising-partners"]))
    theirs = {c.purpose.slug: c.status for c in Consent.objects.filter(user=other_consumer).select_related("purpose")}
    assert theirs == {"personalised-offers": "granted", "credit-check": "granted"}
    assert ConsentReceipt.objects.filter(user=other_consumer).count() == 2


# Receipts


def test_receipts_list_shows_the_consumers_events_newest_first(
    consumer_client, consumer, other_consumer, consent_catalogue
):
    _grant(consumer, consent_catalogue["offers"])
    consent_revoke(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    _grant(other_consumer, consent_catalogue["credit"])
    response = consumer_client.get(reverse("consents:receipt_list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("Consent withdrawn") < body.index("Consent given")
    assert "Credit-risk assessment" not in body
    for receipt in ConsentReceipt.objects.filter(user=consumer):
        assert reverse("consents:receipt_detail", args=[receipt.pk]) in body
        assert reverse("consents:receipt_download", args=[receipt.pk]) in body
    for receipt in ConsentReceipt.objects.filter(user=other_consumer):
        assert str(receipt.pk) not in body


def test_receipts_list_is_paginated(consumer_client, consumer, consent_catalogue):
    offers = consent_catalogue["offers"]
    for _ in range(11):
        _grant(consumer, offers)
        consent_revoke(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    first = consumer_client.get(reverse("consents:receipt_list")).content.decode()
    assert first.count('<tr role="row">') == 21, "a header row and 20 receipts"
    assert "Page 1 of 2" in first
    second = consumer_client.get(reverse("consents:receipt_list") + "?page=2").content.decode()
    assert second.count('<tr role="row">') == 3
    oldest = ConsentReceipt.objects.filter(user=consumer).order_by("issued_at").first()
    assert str(oldest.pk) in second


def test_receipt_page_reads_the_receipt_in_plain_language_with_the_raw_jws(
    consumer_client, consumer, consent_catalogue
):
    _grant(consumer, consent_catalogue["credit"])
    receipt = ConsentReceipt.objects.get(user=consumer)
    response = consumer_client.get(reverse("consents:receipt_detail", args=[receipt.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "The signature is valid" in body
    assert "Consent given: “Credit-risk assessment”" in body
    assert "A credit bureau checks your transactions to assess a loan application." in body
    assert "Transaction history" in body, "category slugs are named"
    assert "Credit Bureau Ltd" in body
    assert "Data broker · United Kingdom" in body
    assert "For a limited period (3 months)" in body
    assert "On this website" in body
    assert "Version 1, published" in body
    assert receipt.jws in body
    assert reverse("jwks") in body


def test_receipt_page_names_the_partners_country_in_the_page_language(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["credit"])
    receipt = ConsentReceipt.objects.get(user=consumer)
    url = reverse("consents:receipt_detail", args=[receipt.pk])

    chinese = consumer_client.get(url, headers={"accept-language": "zh-hans"}).content.decode()

    assert "数据经纪商 · 英国" in chinese
    assert "United Kingdom" not in chinese
    assert receipt.payload["services"][0]["purposes"][0]["thirdParties"][0]["country"] == "GB", "signed as a code"


@pytest.mark.parametrize("name", ["receipt_detail", "receipt_download", "receipt_download_json"])
def test_another_consumers_receipt_is_not_found(consumer_client, other_consumer, consent_catalogue, name):
    _grant(other_consumer, consent_catalogue["offers"])
    theirs = ConsentReceipt.objects.get(user=other_consumer)
    assert consumer_client.get(reverse(f"consents:{name}", args=[theirs.pk])).status_code == 404
    assert consumer_client.get(reverse(f"consents:{name}", args=[uuid.uuid4()])).status_code == 404


def test_receipt_downloads_as_jws_and_as_json(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    receipt = ConsentReceipt.objects.get(user=consumer)
    response = consumer_client.get(reverse("consents:receipt_download", args=[receipt.pk]))
    assert response["Content-Type"] == "application/jose"
    assert response["Content-Disposition"] == f'attachment; filename="consent-receipt-{receipt.pk}.jws"'
    assert response.content.decode() == receipt.jws
    assert document_verify(response.content.decode())["consentReceiptID"] == str(receipt.pk)

    response = consumer_client.get(reverse("consents:receipt_download_json", args=[receipt.pk]))
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == f'attachment; filename="consent-receipt-{receipt.pk}.json"'
    assert response.json() == receipt.payload


def test_jwks_is_public_cacheable_and_open_to_other_origins(client, db):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "public" in response["Cache-Control"]
    assert "max-age=3600" in response["Cache-Control"]
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "Ed25519"
    assert "d" not in key, "never the private half"


@pytest.mark.django_db(transaction=True)
def test_downloaded_receipt_verifies_against_the_jwks_fetched_over_http_and_a_modified_one_fails(
    live_server, consumer, consent_catalogue
):
    _grant(consumer, consent_catalogue["offers"])
    receipt = ConsentReceipt.objects.get(user=consumer)
    client = Client()
    client.force_login(consumer)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    with httpx.Client(base_url=live_server.url, cookies=cookies) as http:
        token = http.get(reverse("consents:receipt_download", args=[receipt.pk])).text
        jwks = http.get("/.well-known/jwks.json").json()
    payload = document_verify(token, jwks)
    assert payload["consentReceiptID"] == str(receipt.pk)
    assert payload["services"][0]["purposes"][0]["purposeId"] == "personalised-offers"

    header, body, signature = token.split(".")
    forged_body = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SignatureInvalid):
        document_verify(f"{header}.{forged_body}.{signature}", jwks)


# Re-consent


@pytest.fixture
def reconsent(consumer, consent_catalogue):
    """The consumer agreed to version 1 of "Personalised offers"; version 2 is a material change."""
    offers = consent_catalogue["offers"]
    _grant(consumer, offers)
    location = DataCategoryFactory(slug="location", name="Location")
    contact = DataCategoryFactory(slug="contact-details")
    purpose_version_publish(
        purpose=offers,
        description="We suggest offers that fit how and where you use your account.",
        retention="Until you withdraw, then 90 days",
        data_categories=[contact, location],
        material=True,
        change_summary="We now also use your location, and keep data for 90 days.",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We suggest offers that fit how and where you use your account.",
            retention="Until you withdraw, then 90 days",
            change_summary="We now also use your location, and keep data for 90 days.",
        ),
    )
    offers.refresh_from_db()
    return offers


def test_dashboard_banner_links_to_the_review_of_a_changed_notice(consumer_client, reconsent):
    body = consumer_client.get("/").content.decode()
    assert 'class="banner"' in body
    assert "The notice for “Personalised offers” has changed." in body
    assert reverse("consents:review", args=["personalised-offers"]) in body


def test_review_shows_a_diff_of_the_notice_and_the_change_summary(consumer_client, reconsent):
    response = consumer_client.get(reverse("consents:review", args=["personalised-offers"]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "We now also use your location, and keep data for 90 days." in body
    assert re.search(r'<ins class="diff-ins"><span class="visually-hidden">added: </span>and where </ins>', body)
    assert re.search(r'<del class="diff-del"><span class="visually-hidden">removed: </span>30</del>', body)
    assert re.search(r'<ins class="diff-ins"><span class="visually-hidden">added: </span>90</ins>', body)
    assert re.search(r'<ins class="diff-ins">.*?Location</ins>', body)
    assert re.search(r'<del class="diff-del">.*?Transaction history</del>', body)
    assert "You agreed to version 1" in body
    assert 'value="accept"' in body
    assert 'value="decline"' in body


def test_accepting_the_new_notice_grants_consent_to_the_current_version(consumer_client, consumer, reconsent):
    response = consumer_client.post(reverse("consents:review", args=["personalised-offers"]), {"decision": "accept"})
    assert response.status_code == 302
    assert _messages(response) == ["You accepted the new notice for “Personalised offers”."]
    consent = Consent.objects.get(user=consumer)
    assert consent.status == ConsentStatus.GRANTED
    assert consent.version.number == 2
    assert "The notice for" not in consumer_client.get("/").content.decode()


def test_declining_the_new_notice_withdraws_consent(consumer_client, consumer, reconsent):
    response = consumer_client.post(reverse("consents:review", args=["personalised-offers"]), {"decision": "decline"})
    assert response.status_code == 302
    assert response["Location"] == reverse("consents:withdraw", args=["personalised-offers"])
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED, "declining asks first"
    response = consumer_client.post(reverse("consents:withdraw", args=["personalised-offers"]))
    assert _messages(response)[0].startswith("You declined the new notice for “Personalised offers”, so your")
    consent = Consent.objects.get(user=consumer)
    assert consent.status == ConsentStatus.REVOKED
    assert consent.receipts.first().event == "revoked"


def test_review_without_a_decision_changes_nothing(consumer_client, consumer, reconsent):
    response = consumer_client.post(reverse("consents:review", args=["personalised-offers"]), {"decision": "maybe"})
    assert response.status_code == 400
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED


def test_review_of_another_consumers_changed_notice_shows_nothing_and_changes_nothing(
    client, other_consumer, consumer, reconsent
):
    client.force_login(other_consumer)
    response = client.get(reverse("consents:review", args=["personalised-offers"]))
    assert response.status_code == 302
    assert _messages(response) == ["“Personalised offers” has nothing for you to review."]
    client.post(reverse("consents:review", args=["personalised-offers"]), {"decision": "decline"})
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED
    assert not Consent.objects.filter(user=other_consumer).exists()


# Dashboard and navigation


def test_dashboard_summarises_the_consumers_consents(consumer_client, consumer, consent_catalogue):
    _grant(consumer, consent_catalogue["offers"])
    _grant(consumer, consent_catalogue["credit"])
    consent_revoke(user=consumer, purpose=consent_catalogue["ads"], actor=Actor.consumer(consumer))
    body = consumer_client.get("/").content.decode()
    assert '<span class="stat">2</span> granted' in body
    assert '<span class="stat">1</span> withdrawn or refused' in body
    assert '<span class="stat">0</span> not decided yet' in body
    # The catalogue's essential purpose and our staff's customer-support purpose (migration 0005).
    assert '<span class="stat">2</span> need no consent' in body
    assert "Next to expire: your consent to “Credit-risk assessment” ends on" in body
    assert reverse("consents:list") in body
    assert reverse("consents:receipt_list") in body
    assert "Who accessed your data" in body
    assert "Your privacy requests" in body


def test_dashboard_without_published_purposes_keeps_the_empty_state(consumer_client):
    Purpose.objects.update(is_active=False)  # the staff purpose of migration 0005 is the only one
    body = consumer_client.get("/").content.decode()
    assert "No purposes have been published yet" in body


def test_navigation_marks_the_current_page(consumer_client, consent_catalogue):
    body = consumer_client.get(reverse("consents:list")).content.decode()
    assert f'<a href="{reverse("consents:list")}" aria-current="page">Consents</a>' in body
    assert f'<a href="{reverse("consents:receipt_list")}">Receipts</a>' in body
    body = consumer_client.get(reverse("consents:receipt_list")).content.decode()
    assert f'<a href="{reverse("consents:receipt_list")}" aria-current="page">Receipts</a>' in body
    assert f'<a href="{reverse("consents:list")}">Consents</a>' in body


def test_receipts_list_and_dashboard_queries_do_not_grow_with_the_data(
    consumer_client, consumer, consent_catalogue, django_assert_max_num_queries
):
    _grant(consumer, consent_catalogue["offers"])
    with django_assert_max_num_queries(10) as receipts_few:
        consumer_client.get(reverse("consents:receipt_list"))
    with django_assert_max_num_queries(10) as dashboard_few:
        consumer_client.get("/")
    for n in range(6):
        purpose = PurposeFactory(slug=f"more-{n}")
        _grant(consumer, purpose)
        consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    with django_assert_max_num_queries(len(receipts_few.captured_queries)):
        body = consumer_client.get(reverse("consents:receipt_list")).content.decode()
    assert body.count('<tr role="row">') == 14
    with django_assert_max_num_queries(len(dashboard_few.captured_queries)):
        body = consumer_client.get("/").content.decode()
    assert '<span class="stat">6</span> withdrawn or refused' in body
