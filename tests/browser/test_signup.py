import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_visitor_signs_up_verifies_email_and_reaches_the_dashboard(page: Page, live_server, artifacts_dir):
    page.goto(live_server.url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your data, your decision")
    page.get_by_role("link", name="Create your account").click()

    page.get_by_label("Email:").fill("newcomer@example.com")
    page.get_by_label("Password:", exact=True).fill("a sturdy pass phrase 2026")
    page.get_by_label("Password (again):").fill("a sturdy pass phrase 2026")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Verify your email address")

    link = re.search(r"https?://\S+/confirm-email/\S+", mail.outbox[-1].body).group(0)
    page.goto(link.replace("http://testserver", live_server.url).replace("http://localhost:8000", live_server.url))
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome, newcomer@example.com")
    page.screenshot(path=artifacts_dir / "signup-dashboard.png", full_page=True)
