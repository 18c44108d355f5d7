import pytest
from django.test import Client
from playwright.sync_api import Browser, expect

from portal.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_browsers_zone_fills_signup_and_is_taken_on_the_first_signed_in_visit(
    browser: Browser, live_server, consumer
):
    context = browser.new_context(timezone_id="Pacific/Auckland")
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    expect(page.locator('input[type="hidden"][name="time_zone"]')).to_have_value("Pacific/Auckland")

    client = Client()
    client.force_login(consumer)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    with page.expect_response(lambda response: response.url.endswith("/profile/time-zone/")) as answer:
        page.goto(f"{live_server.url}/")
    assert answer.value.json() == {"time_zone": "Pacific/Auckland", "taken": True}
    assert User.objects.get(pk=consumer.pk).time_zone == "Pacific/Auckland"
    page.goto(f"{live_server.url}/profile/")
    expect(page.get_by_label("Time zone")).to_have_value("Pacific/Auckland")
    context.close()
