"""The connected-app journey in a browser, with the demo partner running as its own process.

Partner page → portal login → consent screen (one optional category left out) → approve → the
partner shows exactly what was approved and reads it (checked by introspection, reported to the
portal) → the consumer sees the app and the access → withdraws → the partner's next read is
refused and it shows the ``consent.revoked`` webhook it received.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from audit.models import AccessEvent, AccessVerdict
from audit.services import Actor
from consents.models import PARTNER_SCOPES, AppGrant, ConsentStatus
from consents.services.apps import connected_app_create
from consents.services.partners import partner_credential_create
from tests.conftest import ROOT
from tests.factories import PASSWORD, DataCategoryFactory, PartnerFactory, PurposeFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo_partner(live_server, tmp_path: Path, delivery_worker) -> Iterator[str]:
    """The demo partner's catalogue, app and credential, and ``manage.py demo_partner`` serving them."""
    port = _free_port()
    listen = f"127.0.0.1:{port}"
    categories = [
        DataCategoryFactory(slug="transaction-history", name="Transaction history"),
        DataCategoryFactory(slug="account-balances", name="Account balances"),
        DataCategoryFactory(slug="contact-details", name="Contact details"),
    ]
    purpose = PurposeFactory(slug="personalised-offers", name="Personalised offers", notice__categories=categories)
    partner = PartnerFactory(
        slug="meridian-research-labs", name="Meridian Research Labs", webhook_url=f"http://{listen}/webhooks/in"
    )
    credential, secret = partner_credential_create(
        partner=partner, label="demo", scopes=PARTNER_SCOPES, actor=Actor.system("tests")
    )
    app, app_secret = connected_app_create(
        partner=partner,
        name="Meridian Offers",
        redirect_uris=[f"http://{listen}/callback"],
        purposes=[purpose],
        data_categories=categories,
        max_duration_days=90,
        max_lookback_days=365,
        actor=Actor.system("tests"),
    )
    config = tmp_path / "demo_partner.json"
    config.write_text(
        json.dumps(
            {
                "client_id": credential.application.client_id,
                "client_secret": secret,
                "webhook_secret": partner.webhook_secret,
                "app_client_id": app.application.client_id,
                "app_client_secret": app_secret,
                "portal_url": live_server.url,
                "listen": listen,
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "demo_partner", "--config", str(config)], cwd=ROOT, env={**os.environ}
    )
    url = f"http://{listen}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1, trust_env=False)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, "the demo partner exited"
            assert time.monotonic() < deadline, "the demo partner did not start"
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_consumer_connects_the_demo_app_then_cuts_it_off(page: Page, live_server, demo_partner, artifacts_dir):
    user = UserFactory(email="connector@example.com")

    page.goto(demo_partner)
    page.get_by_role("button", name="Connect your Privacy Portal account").click()
    # Not signed in at the portal: its login first, then back to the consent screen.
    page.get_by_label("Email:").fill(user.email)
    page.get_by_label("Password:").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Meridian Offers asks to read some of your data")
    page.screenshot(path=artifacts_dir / "connect-consent-screen.png", full_page=True)
    page.get_by_label("Account balances").check()
    page.get_by_label("Contact details").uncheck()
    page.get_by_label("Just this once").check()
    page.get_by_role("button", name="Approve").click()

    page.wait_for_url(f"{demo_partner}/")
    # Back at the partner: exactly the approved categories, required one included.
    expect(page.get_by_role("status")).to_have_text("Connected.")
    grant = AppGrant.objects.get(user=user)
    expect(page.locator("#grant-id")).to_have_text(str(grant.pk))
    expect(page.locator("#approved-categories li")).to_have_text(["account-balances", "transaction-history"])
    page.get_by_role("button", name="Read my demo data").click()
    expect(page.locator("#demo-data dt")).to_have_text(["account-balances", "transaction-history"])
    page.screenshot(path=artifacts_dir / "connect-partner-read.png", full_page=True)
    access = AccessEvent.objects.get(user=user)
    assert sorted(access.categories) == ["account-balances", "transaction-history"]

    # The consumer sees the app and the access in the portal.
    page.goto(f"{live_server.url}/connected/")
    expect(page.get_by_role("heading", name="Connected now")).to_be_visible()
    expect(page.get_by_text("Meridian Offers").first).to_be_visible()
    page.goto(f"{live_server.url}/access/events/")
    expect(page.get_by_role("cell", name="Meridian Research Labs")).to_be_visible()
    expect(page.get_by_text("Meridian Offers read your data to pick offers.")).to_be_visible()
    assert access.verdict == AccessVerdict.COVERED

    page.goto(f"{live_server.url}/connected/")
    page.get_by_role("link", name="Withdraw Meridian Offers").click()
    page.get_by_role("button", name="Confirm withdrawal").click()
    grant.refresh_from_db()
    assert grant.status == ConsentStatus.REVOKED

    # The partner's next read is refused (introspection is live), and the webhook arrived.
    page.goto(demo_partner)
    page.get_by_role("button", name="Read my demo data").click()
    expect(page.get_by_role("status")).to_contain_text("Access refused")
    expect(page.locator("#demo-data")).to_have_count(0)
    # Delivery is asynchronous (outbox → worker → partner): the page shows what has arrived so far.
    for _ in range(60):
        if "consent.revoked" in page.locator("#webhooks li code").all_inner_texts():
            break
        time.sleep(0.5)
        page.reload()
    expect(page.locator("#webhooks li code")).to_contain_text(["consent.granted", "consent.revoked"])
    page.screenshot(path=artifacts_dir / "connect-partner-refused.png", full_page=True)
    assert AccessEvent.objects.filter(user=user).count() == 1
