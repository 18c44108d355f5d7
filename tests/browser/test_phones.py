"""Every consumer page at 360 px, in English and Simplified Chinese: nothing scrolls sideways, and
axe-core finds no serious or critical violation. Plus the no-JavaScript and focus journeys of issue 11."""

import json
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from allauth.account.models import EmailAddress
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, expect

from audit.services import Actor
from consents.models import Consent
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant, consent_revoke
from consents.services.notices import purpose_version_publish
from consents.services.partners import partner_subject_ensure
from portal.notifications import settings_token
from privacy_requests.models import AgentRequest
from privacy_requests.services.agents import agent_request_dispatch, agent_request_submit, confirm_token_make
from privacy_requests.services.requests import cancel_token_make
from tests.consents.test_connect_flow import _basic, _pkce
from tests.factories import (
    AppGrantFactory,
    DataCategoryFactory,
    PrivacyRequestFactory,
    UserFactory,
    connected_app_create_for_tests,
)

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # .ci/test installs axe-core (npm ci) and sets PORTAL_REQUIRE_AXE, so there a missing copy fails the run.
    pytest.mark.skipif(
        not AXE.exists() and not os.environ.get("PORTAL_REQUIRE_AXE"),
        reason="axe-core is not installed: run `npm ci --prefix tests/browser` (the CI test command does)",
    ),
]

PHONE = {"width": 360, "height": 780}
LANGUAGES = ("en", "zh-hans")

SIGNED_IN_PAGES = {
    "dashboard": "/",
    "consents": "/consents/",
    "withdraw": "/consents/credit-check/withdraw/",
    "review": "/consents/personalised-offers/review/",
    "receipts": "/consents/receipts/",
    "access": "/access/",
    "timeline": "/access/events/",
    "timeline-older": "/access/events/?after={older}",
    "activity": "/activity/",
    "requests": "/requests/",
    "request": "/requests/{request}/",
    "profile": "/profile/",
    "email-settings": "/email-settings/{token}/",
    "connected": "/connected/",
    "connected-withdraw": "/connected/{grant}/withdraw/",
    "delete": "/requests/delete/",
    "reauthenticate": "/accounts/reauthenticate/",
    "privacy-notice": "/privacy-notice/",
    "accessibility": "/accessibility/",
    "account-email": "/accounts/email/",
    "account-password": "/accounts/password/change/",
    "account-security": "/accounts/2fa/",
}
SIGNED_OUT_PAGES = {
    "landing": "/",
    "login": "/accounts/login/",
    "signup": "/accounts/signup/",
    "password-reset": "/accounts/password/reset/",
    "verification-sent": "/accounts/confirm-email/",
    "agent": "/requests/agent/",
    "agent-sent": "/requests/agent/sent/",
    "cancel-link": "/requests/cancel/{cancel}/",
}
# Pages reached from an email or another site, with a token made for the run.
SIGNED_IN_LINKED_PAGES = {
    # First: a pushed authorisation request lives CONNECT_REQUEST_URI_SECONDS.
    "connect-authorize": "/connect/authorize?client_id={client_id}&request_uri={request_uri}",
    "agent-confirm": "/requests/agent/confirm/{agent_confirm}/",
    "unsubscribe": "/email-settings/{token}/unsubscribe/material_change/",
}


def _sign_in(context: BrowserContext, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])


def _accesses(user, catalogue, count: int) -> None:
    """``count`` accesses by the credit bureau, newest first one day apart; the older ones are flagged."""
    bureau = catalogue["bureau"]
    subject = partner_subject_ensure(partner=bureau, user=user)
    now = timezone.now()
    reports = [
        AccessReport(
            event_id=f"phone-{i}",
            subject_id=subject.subject_id,
            purpose="credit-check",
            categories=("transactions",),
            accessed_at=now - timedelta(days=i, minutes=1),
            action="read",
            detail=f"Loan application check number {i} with a long reference LOAN-APPLICATION-0000{i}",
        )
        for i in range(count)
    ]
    access_events_ingest(partner=bureau, reports=reports)


def _consumer_history(consumer, catalogue) -> dict[str, str]:
    """Receipts, accesses (some flagged), a notice to review and an export: every page has content."""
    actor = Actor.consumer(consumer)
    bureau = catalogue["bureau"]
    bureau.retention = "Keeps the record of a credit search on your file for 12 months, as credit rules require."
    bureau.translations = {
        "en": {"retention": bureau.retention},
        "zh-hans": {"retention": "按照征信规定，信用查询记录会在您的信用档案中保留 12 个月。"},  # noqa: RUF001 (Chinese punctuation)
    }
    bureau.save(update_fields=["retention", "translations"])
    consent_grant(user=consumer, purpose=catalogue["offers"], actor=actor)
    consent_grant(user=consumer, purpose=catalogue["ads"], actor=actor)
    consent_revoke(user=consumer, purpose=catalogue["ads"], actor=actor)
    consent_grant(user=consumer, purpose=catalogue["credit"], actor=actor)
    _accesses(consumer, catalogue, 55)
    purpose_version_publish(
        purpose=catalogue["offers"],
        description="We suggest offers that fit how and where you use your account.",
        retention="Until you withdraw, then 90 days",
        data_categories=[DataCategoryFactory(slug="location", name="Location")],
        material=True,
        change_summary="We now also use your location.",
        actor=Actor.system("tests"),
        translations={
            "zh-hans": {
                "name": "个性化优惠",
                "description": "我们根据您使用账户的方式和地点推荐合适的优惠。",
                "retention": "直到您撤回同意后 90 天",
                "change_summary": "我们现在也会使用您的位置。",
            }
        },
    )
    request = PrivacyRequestFactory(user=consumer, kind="export")
    receipt = Consent.objects.get(user=consumer, purpose=catalogue["credit"]).receipts.get()
    grant = AppGrantFactory(user=consumer, purpose=catalogue["credit"], app__partner=catalogue["bureau"])
    return {
        "request": str(request.pk),
        "receipt": str(receipt.pk),
        "grant": str(grant.pk),
        "token": settings_token(consumer),
        "cancel": _deletion_cancel_token(),
        "agent_confirm": _agent_request_awaiting(consumer),
    }


def _deletion_cancel_token() -> str:
    """The emailed cancellation link of another consumer's deletion in its grace period (opened signed out)."""
    deletion = PrivacyRequestFactory(
        user=UserFactory(),
        kind="deletion",
        grace_ends_at=timezone.now() + timedelta(days=7),
        cancel_nonce=secrets.token_hex(16),
    )
    return cancel_token_make(deletion)


def _agent_request_awaiting(consumer) -> str:
    """An authorised agent's export request waiting for the consumer; the token of its confirmation link."""
    EmailAddress.objects.update_or_create(
        user=consumer, email=consumer.email, defaults={"verified": True, "primary": True}
    )
    submitted = agent_request_submit(
        kind="export",
        consumer_email=consumer.email,
        agent_name="Alex Agent",
        agent_email="alex@advocates.example",
        agent_organisation="Advocates LLP",
        document=SimpleUploadedFile("permission.pdf", b"%PDF-1.7\n%%EOF\n", content_type="application/pdf"),
        language="en",
    )
    agent_request_dispatch(agent_request_id=submitted.pk)  # nothing to do if the queued task already ran
    return confirm_token_make(AgentRequest.objects.get(pk=submitted.pk))


def _pushed_authorization(catalogue) -> dict[str, str]:
    """The bureau's app asks to read transactions for a credit check: what its consent screen's URL needs."""
    app, secret = connected_app_create_for_tests(partner=catalogue["bureau"], purpose=catalogue["credit"])
    client_id = app.application.client_id
    details = {
        "type": "portal_data_access",
        "purpose": "credit-check",
        "data_categories": [{"category": "transactions", "required": True, "reason": "To assess your application."}],
        "duration": {"type": "time_bound", "period_days": 30},
        "lookback_days": 365,
    }
    response = Client().post(
        reverse("connect:par"),
        {
            "response_type": "code",
            "redirect_uri": "https://app.example.com/callback",
            "code_challenge": _pkce()[1],
            "code_challenge_method": "S256",
            "state": "phone-state",
            "authorization_details": json.dumps([details]),
        },
        **_basic(client_id, secret),
    )
    assert response.status_code == 201, response.content
    return {"client_id": client_id, "request_uri": quote(response.json()["request_uri"], safe="")}


def _check_page(page: Page, url: str, shot: Path) -> list[str]:
    """Problems on one page: sideways scrolling, serious or critical axe-core violations."""
    problems = []
    response = page.goto(url)
    assert response is not None
    assert response.status == 200, f"{url}: {response.status}"
    page.screenshot(path=shot, full_page=True)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
        )
        problems.append(f"{url} scrolls sideways ({widths[0]} > {widths[1]}): {wide}")
    page.add_script_tag(path=AXE)
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"""
    )
    problems += [f"{url} axe {violation}" for violation in violations]
    return problems


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_consumer_page_fits_a_phone_and_passes_axe(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir, media_root, language
):
    ids = _consumer_history(consumer, consent_catalogue)
    shots = artifacts_dir / "phones"
    shots.mkdir(exist_ok=True)
    # The Content-Security-Policy forbids inline scripts; axe-core is injected as one.
    options = {"viewport": PHONE, "bypass_csp": True}
    cookie = {"name": "django_language", "value": language, "url": live_server.url}
    problems: list[str] = []

    visitor = browser.new_context(**options)
    try:
        visitor.add_cookies([cookie])
        page = visitor.new_page()
        for name, path in SIGNED_OUT_PAGES.items():
            problems += _check_page(page, live_server.url + path.format(**ids), shots / f"{language}-{name}.png")
    finally:
        visitor.close()

    context = browser.new_context(**options)
    try:
        context.add_cookies([cookie])
        _sign_in(context, live_server, consumer)
        page = context.new_page()
        page.goto(f"{live_server.url}/access/events/")
        older = re.search(r"after=([^&\"]+)", page.locator(".load-more-row a").get_attribute("href") or "")
        assert older is not None
        ids |= _pushed_authorization(consent_catalogue)
        pages = SIGNED_IN_LINKED_PAGES | SIGNED_IN_PAGES | {"receipt": f"/consents/receipts/{ids['receipt']}/"}
        for name, path in pages.items():
            url = live_server.url + path.format(older=older.group(1), **ids)
            problems += _check_page(page, url, shots / f"{language}-{name}.png")
            expect(page.locator("html")).to_have_attribute("lang", language)
    finally:
        context.close()
    assert not problems, "\n".join(problems)


# The labels the two journeys below click, per language.
JOURNEY_TEXT = {
    "en": {
        "grant": "Grant consent",
        "granted": "You gave your consent to “Personalised offers”.",
        "older": "Older accesses",
        "newer": "Newer accesses",
    },
    "zh-hans": {
        "grant": "给予同意",
        "granted": "您已同意“中文 Personalised offers”。",
        "older": "更早的访问",
        "newer": "较新的访问",
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_without_javascript_the_outcome_is_in_view_and_older_pages_link_back(
    browser: Browser, live_server, consumer, consent_catalogue, artifacts_dir, language
):
    consent_grant(user=consumer, purpose=consent_catalogue["credit"], actor=Actor.consumer(consumer))
    _accesses(consumer, consent_catalogue, 55)
    text = JOURNEY_TEXT[language]
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        _sign_in(context, live_server, consumer)
        page = context.new_page()
        page.goto(f"{live_server.url}/consents/")
        card = page.locator("#purpose-personalised-offers")
        card.get_by_role("button", name=text["grant"]).click()
        note = card.locator(".card-note")
        expect(note).to_have_text(text["granted"])
        expect(note).to_be_in_viewport()
        page.screenshot(path=artifacts_dir / f"phone-nojs-granted-{language}.png")

        page.goto(f"{live_server.url}/access/events/")
        first_row = page.locator("#timeline-rows tr").first.inner_text()
        expect(page.get_by_role("link", name=text["newer"])).to_have_count(0)
        page.get_by_role("link", name=text["older"]).click()
        expect(page.locator("#timeline-rows tr:not(.load-more-row)")).to_have_count(5)
        page.get_by_role("link", name=text["newer"]).click()
        expect(page.locator("#timeline-rows tr:not(.load-more-row)")).to_have_count(50)
        assert page.locator("#timeline-rows tr").first.inner_text() == first_row
        expect(page.get_by_role("link", name=text["older"])).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_loading_older_accesses_moves_focus_to_the_first_new_row(
    page: Page, live_server, consumer, consent_catalogue, language
):
    _accesses(consumer, consent_catalogue, 55)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    _sign_in(page.context, live_server, consumer)
    page.goto(f"{live_server.url}/access/events/")
    rows = page.locator("#timeline-rows tr:not(.load-more-row)")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name=JOURNEY_TEXT[language]["older"]).click()
    expect(rows).to_have_count(55)
    expect(rows.nth(50)).to_be_focused()
    assert page.url == f"{live_server.url}/access/events/", "appended in place"
