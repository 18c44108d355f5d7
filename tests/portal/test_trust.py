"""Who runs the portal, its privacy notice and accessibility statement, and the error summary of forms."""

import pytest
from django.urls import reverse

from audit.services import Actor
from consents.models import ConsentReceipt
from consents.services.consents import consent_grant

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["privacy_notice", "accessibility"])
def test_built_in_privacy_notice_and_accessibility_statement_are_linked_from_every_page(client, name, settings):
    settings.PORTAL_CONTROLLER = settings.PORTAL_CONTROLLER | {"name": "Example Bank plc", "email": "dpo@bank.example"}
    page = client.get(reverse(name))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Example Bank plc" in body
    assert 'href="mailto:dpo@bank.example"' in body
    landing = client.get("/").content.decode()
    assert f'href="{reverse(name)}"' in landing
    assert "Run by Example Bank plc" in landing


def test_configured_privacy_notice_and_accessibility_urls_replace_the_built_in_pages(client, settings):
    settings.PRIVACY_NOTICE_URL = "https://bank.example/privacy"
    settings.ACCESSIBILITY_STATEMENT_URL = "https://bank.example/accessibility"
    body = client.get("/").content.decode()
    assert 'href="https://bank.example/privacy"' in body
    assert 'href="https://bank.example/accessibility"' in body
    assert f'href="{reverse("privacy_notice")}"' not in body


def test_the_receipts_privacy_notice_link_resolves(consumer_client, consumer, consent_catalogue, settings):
    consent_grant(user=consumer, purpose=consent_catalogue["offers"], actor=Actor.consumer(consumer))
    receipt = ConsentReceipt.objects.get(consent__user=consumer)
    policy_url = receipt.payload["policyUrl"]
    assert policy_url.startswith(settings.SITE_URL)
    assert consumer_client.get(policy_url.removeprefix(settings.SITE_URL)).status_code == 200


def test_profile_links_to_the_password_change(consumer_client):
    body = consumer_client.get(reverse("profile")).content.decode()
    assert f'href="{reverse("account_change_password")}"' in body


def test_account_pages_use_sentence_case(client):
    body = client.get(reverse("account_login")).content.decode()
    assert "Sign in" in body
    assert "Sign In" not in body


def test_a_form_with_errors_gets_a_summary_linking_to_each_field_and_error_in_the_title(consumer_client):
    response = consumer_client.get(reverse("audit:access_timeline"), {"since": "2026-02-30"})
    body = response.content.decode()
    assert "<title>Error: " in body
    assert body.index('class="error-summary"') < body.index("<h1>")
    assert 'href="#id_since"' in body
    summary = body[body.index('class="error-summary"') : body.index("</div>", body.index('class="error-summary"'))]
    assert "autofocus" in summary
    assert "There is a problem" in summary


def test_a_form_without_errors_has_no_summary(consumer_client):
    body = consumer_client.get(reverse("audit:access_timeline")).content.decode()
    assert "error-summary" not in body
    assert "<title>Error: " not in body
