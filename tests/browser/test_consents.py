import re
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect

from audit.services import Actor
from audit.signing import SignatureInvalid, document_verify
from consents.models import Consent, ConsentStatus
from consents.services.consents import consent_grant
from consents.services.notices import purpose_version_publish
from tests.factories import DataCategoryFactory, notice_translations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(context: BrowserContext, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])


def _verify_downloaded_receipt(page: Page, live_server, download) -> dict:
    """The downloaded JWS verifies against the key set the site publishes; a modified copy does not."""
    token = Path(download.path()).read_text()
    assert download.suggested_filename.endswith(".jws")
    jwks = page.request.get(f"{live_server.url}/.well-known/jwks.json").json()
    payload = document_verify(token, jwks)
    header, body, signature = token.split(".")
    tampered = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(SignatureInvalid):
        document_verify(f"{header}.{tampered}.{signature}", jwks)
    return payload


def test_grant_then_withdraw_with_impact_preview_then_verify_the_downloaded_receipt(
    page: Page, live_server, consumer, consent_catalogue, artifacts_dir
):
    _sign_in(page.context, live_server, consumer)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/consents/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your consents")
    page.screenshot(path=artifacts_dir / "consents.png", full_page=True)
    page.set_viewport_size({"width": 360, "height": 800})
    page.screenshot(path=artifacts_dir / "consents-360.png")
    page.locator("#purpose-credit-check").screenshot(path=artifacts_dir / "consents-360-time-bound.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    card = page.locator("#purpose-personalised-offers")
    expect(card.get_by_text("Not decided", exact=True)).to_be_visible()
    card.get_by_role("button", name="Grant consent").click()
    expect(card.get_by_text("Granted since")).to_be_visible()
    expect(page.locator("#consent-live")).to_have_text("You gave your consent to “Personalised offers”.")
    expect(page.get_by_role("heading", name="Personalised offers")).to_be_focused()
    assert page.url == f"{live_server.url}/consents/", "updated in place"

    card.get_by_role("link", name="Withdraw consent").click()
    expect(card.get_by_role("heading", name="Withdraw your consent to “Personalised offers”?")).to_be_focused()
    expect(card.get_by_text("AdCo Media")).to_be_visible()
    expect(
        card.get_by_text("Advertiser — a company that uses data to choose which adverts to show you")
    ).to_be_visible()
    expect(card.get_by_text("United States")).to_be_visible()
    expect(card.get_by_text("Mailer GmbH")).to_be_visible()
    card.get_by_role("link", name="Keep my consent").click()
    expect(card.get_by_text("Granted since")).to_be_visible()
    assert Consent.objects.get(user=consumer).status == ConsentStatus.GRANTED

    card.get_by_role("link", name="Withdraw consent").click()
    card.get_by_label("Why are you withdrawing? (optional)").fill("I get enough offers already")
    card.get_by_role("button", name="Confirm withdrawal").click()
    expect(card.get_by_text("Withdrawn since")).to_be_visible()
    expect(page.locator("#consent-live")).to_contain_text(
        "We are telling these partners to stop: AdCo Media, Mailer GmbH."
    )
    page.screenshot(path=artifacts_dir / "consents-after-withdraw.png", full_page=True)
    consent = Consent.objects.get(user=consumer)
    assert consent.status == ConsentStatus.REVOKED
    assert consent.revocation_note == "I get enough offers already"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Receipts").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Consent withdrawn")
    rows.first.get_by_role("link", name=re.compile("^Read")).click()
    expect(page.get_by_text("The signature is valid")).to_be_visible()
    page.screenshot(path=artifacts_dir / "consent-receipt.png", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the signed receipt (.jws)").click()
    payload = _verify_downloaded_receipt(page, live_server, download_info.value)
    assert payload["event"] == "revoked"
    assert payload["services"][0]["purposes"][0]["purposeId"] == "personalised-offers"
    assert payload["withdrawal"]["reason"] == "user_action"


def test_changed_notice_is_reviewed_with_a_diff_and_accepted(
    page: Page, live_server, consumer, consent_catalogue, artifacts_dir
):
    offers = consent_catalogue["offers"]
    consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    purpose_version_publish(
        purpose=offers,
        description="We suggest offers that fit how and where you use your account.",
        retention="Until you withdraw, then 90 days",
        data_categories=[DataCategoryFactory(slug="contact-details"), DataCategoryFactory(slug="location")],
        material=True,
        change_summary="We now also use your location.",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We suggest offers that fit how and where you use your account.",
            retention="Until you withdraw, then 90 days",
            change_summary="We now also use your location.",
        ),
    )
    _sign_in(page.context, live_server, consumer)
    page.goto(live_server.url)
    page.screenshot(path=artifacts_dir / "dashboard-reconsent.png", full_page=True)
    page.get_by_role("link", name="Review the changes to “Personalised offers”").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("The notice for “Personalised offers” has changed")
    expect(page.get_by_text("We now also use your location.")).to_be_visible()
    expect(page.locator("ins.diff-ins").first).to_contain_text("and where")
    expect(page.locator("del.diff-del", has_text="30")).to_be_visible()
    expect(page.locator("ins.diff-ins", has_text="90")).to_be_visible()
    expect(page.locator("del.diff-del", has_text="Transaction history")).to_be_visible()
    page.screenshot(path=artifacts_dir / "consent-review.png", full_page=True)
    page.get_by_role("button", name="Accept the new notice").click()

    expect(page).to_have_url(re.compile(r"/consents/#purpose-personalised-offers$"))
    expect(page.get_by_text("You accepted the new notice for “Personalised offers”.")).to_be_visible()
    card = page.locator("#purpose-personalised-offers")
    expect(card.get_by_text("Granted since")).to_be_visible()
    expect(card.get_by_text("Version 2, published")).to_be_visible()
    consent = Consent.objects.get(user=consumer)
    assert consent.status == ConsentStatus.GRANTED
    assert consent.version.number == 2


def test_declining_a_changed_notice_shows_the_withdrawal_preview_first(
    page: Page, live_server, consumer, consent_catalogue, artifacts_dir
):
    offers = consent_catalogue["offers"]
    consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    purpose_version_publish(
        purpose=offers,
        description="We suggest offers that fit where you use your account.",
        retention="Until you withdraw, then 30 days",
        data_categories=[DataCategoryFactory(slug="contact-details"), DataCategoryFactory(slug="location")],
        material=True,
        change_summary="We now also use your location.",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We suggest offers that fit where you use your account.",
            retention="Until you withdraw, then 30 days",
            change_summary="We now also use your location.",
        ),
    )
    _sign_in(page.context, live_server, consumer)
    page.goto(f"{live_server.url}/consents/personalised-offers/review/")
    expect(page.get_by_text("Added", exact=True).first).to_be_visible()
    expect(page.get_by_text("Removed", exact=True).first).to_be_visible()
    style = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).fontSize, e.getBoundingClientRect().height]"
    accept = page.get_by_role("button", name="Accept the new notice").evaluate(style)
    decline = page.get_by_role("button", name="Decline and withdraw my consent").evaluate(style)
    assert accept == decline, "neither choice is nudged"
    page.get_by_role("button", name="Decline and withdraw my consent").click()

    expect(
        page.get_by_text("Decline the new notice and withdraw your consent to “Personalised offers”?")
    ).to_be_visible()
    expect(page.get_by_text("Germany")).to_be_visible()
    page.screenshot(path=artifacts_dir / "consent-decline-preview.png", full_page=True)
    assert Consent.objects.get(user=consumer).status == ConsentStatus.RECONSENT_REQUIRED
    page.get_by_role("button", name="Confirm withdrawal").click()
    expect(page.get_by_text("You declined the new notice for “Personalised offers”", exact=False)).to_be_visible()
    assert Consent.objects.get(user=consumer).status == ConsentStatus.REVOKED


def test_grant_and_withdraw_work_with_javascript_disabled(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir
):
    context = browser.new_context(java_script_enabled=False)
    try:
        _sign_in(context, live_server, consumer)
        page = context.new_page()
        page.goto(f"{live_server.url}/consents/")
        card = page.locator("#purpose-credit-check")
        expect(card.get_by_text("If you agree now, your consent ends on")).to_be_visible()
        card.get_by_role("button", name="Grant consent").click()

        expect(page).to_have_url(re.compile(r"/consents/#purpose-credit-check$"))
        expect(card.locator(".card-note")).to_contain_text("You gave your consent to “Credit-risk assessment”.")
        expect(card.locator(".card-note")).to_be_in_viewport()
        expect(card.get_by_text("Granted since")).to_be_visible()

        card.get_by_role("link", name="Withdraw consent").click()
        expect(page).to_have_url(re.compile(r"/consents/credit-check/withdraw/$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Withdraw consent")
        expect(page.get_by_text("United Kingdom")).to_be_visible()
        page.screenshot(path=artifacts_dir / "consents-withdraw-nojs.png", full_page=True)
        page.get_by_label("Why are you withdrawing? (optional)").fill("Application finished")
        page.get_by_role("button", name="Confirm withdrawal").click()

        expect(page).to_have_url(re.compile(r"/consents/#purpose-credit-check$"))
        expect(card.locator(".card-note")).to_contain_text("We are telling these partners to stop: Credit Bureau Ltd.")
        expect(card.locator(".card-note")).to_be_in_viewport()
        expect(card.get_by_text("Withdrawn since")).to_be_visible()
        assert Consent.objects.get(user=consumer).status == ConsentStatus.REVOKED

        page.goto(f"{live_server.url}/consents/receipts/")
        with page.expect_download() as download_info:
            page.locator("tbody tr").first.get_by_role("link", name="Download (.jws)").click()
        payload = _verify_downloaded_receipt(page, live_server, download_info.value)
        assert payload["event"] == "revoked"
        assert payload["services"][0]["purposes"][0]["purposeId"] == "credit-check"
    finally:
        context.close()
