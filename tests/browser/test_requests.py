import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from privacy_requests.models import PrivacyRequest, RequestStatus
from tests.factories import PASSWORD, UserFactory
from tests.privacy_requests.helpers import consumer_data_seed, export_json

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, live_server, email: str) -> None:
    """Through the login form, as a person would, so allauth records how they authenticated."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email:").fill(email)
    page.get_by_label("Password:").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def _reauthenticate(page: Page) -> None:
    expect(page.get_by_text("Enter your password:")).to_be_visible()
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()


def test_consumer_requests_an_export_and_downloads_it(page: Page, live_server, worker_on_test_db, artifacts_dir):
    user = UserFactory(email="exporter@example.com")
    consumer_data_seed(user)
    _log_in(page, live_server, user.email)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy requests")
    page.screenshot(path=artifacts_dir / "requests-list.png", full_page=True)
    page.get_by_role("button", name="Request a copy of my data").click()
    _reauthenticate(page)

    expect(page.get_by_role("heading", level=1)).to_have_text("Copy of your data")
    # The status region polls (htmx) until the worker has built the file; no reload needed.
    download_link = page.get_by_role("link", name="Download your data")
    expect(download_link).to_be_visible(timeout=90_000)
    expect(page.locator("#request-status")).not_to_have_attribute("hx-trigger", "every 2s")
    page.screenshot(path=artifacts_dir / "requests-export-ready.png", full_page=True)

    with page.expect_download() as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename.startswith("privacy-export-")
    with zipfile.ZipFile(download.path()) as archive:
        assert export_json(archive, "profile")["items"][0]["email"] == "exporter@example.com"
        assert "README.txt" in archive.namelist()
    assert PrivacyRequest.objects.get(user=user).download_count == 1


def test_consumer_schedules_the_deletion_of_their_account_and_cancels_it(page: Page, live_server, artifacts_dir):
    user = UserFactory(email="leaver@example.com")
    data = consumer_data_seed(user)
    _log_in(page, live_server, user.email)

    page.goto(f"{live_server.url}/requests/")
    page.get_by_role("link", name="Review what deletion means").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete your account")
    for partner in data.partners:
        expect(page.get_by_role("listitem").filter(has_text=partner.name)).to_be_visible()
    page.screenshot(path=artifacts_dir / "requests-deletion-confirm.png", full_page=True)
    page.get_by_label("To confirm, type DELETE or your email address").fill("remove")
    page.get_by_role("button", name="Delete my account").click()
    _reauthenticate(page)
    # The error summary (GOV.UK pattern): at the top, focused, "Error:" in the title, linking to the field.
    summary = page.locator(".error-summary")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: "))
    page.screenshot(path=artifacts_dir / "requests-deletion-error-summary.png", full_page=True)
    summary.get_by_role("link", name="Type the word DELETE, or your email address.").click()
    expect(page.get_by_label("To confirm, type DELETE or your email address")).to_be_focused()

    # Any case will do: a phone keyboard may capitalise only the first letter.
    page.get_by_label("To confirm, type DELETE or your email address").fill("Delete")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deletion of your account")
    expect(page.get_by_text("Deletion is scheduled to start on")).to_be_visible()
    page.get_by_role("link", name="All your privacy requests").click()
    expect(page.get_by_text("Follow or cancel the deletion")).to_be_visible()
    page.get_by_role("link", name="Deletion of your account").click()
    page.screenshot(path=artifacts_dir / "requests-deletion-scheduled.png", full_page=True)

    page.get_by_role("button", name="Cancel the deletion").click()
    expect(page.get_by_text("The deletion is cancelled")).to_be_visible()
    expect(page.locator(".badge-request-cancelled")).to_have_text("Cancelled")
    request = PrivacyRequest.objects.get(user=user)
    assert request.status == RequestStatus.CANCELLED
    user.refresh_from_db()
    assert user.is_active
