import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_under_the_content_security_policy(page: Page, live_server, artifacts_dir):
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Privacy Portal partner API")
    expect(page.get_by_text("/api/v1/consents/check", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    page.screenshot(path=artifacts_dir / "api-docs.png", full_page=False)
    assert problems == []
