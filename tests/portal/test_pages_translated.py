"""Every consumer page in Simplified Chinese shows no English text that the catalogue translates."""

import gettext
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from consents.models import ConsentReceipt
from portal.models import User

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo"
# Attributes a person reads or hears.
READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}
SKIPPED = {"script", "style"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def translated_msgids() -> set[str]:
    """The English catalogue strings that have a Chinese translation (and no placeholder)."""
    with CATALOGUE.open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
    return {
        msgid.strip()
        for msgid, msgstr in catalog.items()
        if isinstance(msgid, str) and msgid.strip() and msgstr != msgid and "%(" not in msgid and "{" not in msgid
    }


class VisibleText(HTMLParser):
    """Text nodes and read attributes of a page, leaving out text marked as another language."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.stack: list[tuple[str, bool]] = []

    @property
    def hidden(self) -> bool:
        return any(skip for _tag, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        other_language = tag != "html" and "lang" in values
        if tag not in VOID:
            self.stack.append((tag, tag in SKIPPED or other_language))
        if not self.hidden and not other_language:
            self.texts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.texts.append(data)


def untranslated(html: str, msgids: set[str]) -> set[str]:
    parser = VisibleText()
    parser.feed(html)
    return {text for text in (" ".join(t.split()) for t in parser.texts) if text in msgids}


@pytest.fixture(autouse=True)
def _page_language_reset() -> Iterator[None]:
    # A request leaves its language active in the thread; later tests expect the default.
    yield
    translation.deactivate()


@pytest.fixture
def demo_client(client, db):
    call_command("seed_demo")
    client.force_login(User.objects.get(email="demo@example.com"))
    client.cookies["django_language"] = "zh-hans"
    return client


def consumer_pages() -> list[str]:
    receipt = ConsentReceipt.objects.filter(user__email="demo@example.com").order_by("issued_at").first()
    assert receipt is not None
    return [
        reverse("home"),
        reverse("profile"),
        reverse("consents:list"),
        reverse("consents:review", args=["credit-risk-assessment"]),
        reverse("consents:withdraw", args=["personalised-offers"]),
        reverse("consents:receipt_list"),
        reverse("consents:receipt_detail", args=[receipt.pk]),
        reverse("audit:access"),
        reverse("audit:access_timeline"),
        reverse("audit:activity"),
        reverse("requests:list"),
    ]


def test_consumer_pages_in_chinese_show_no_translated_english_string(demo_client):
    msgids = translated_msgids()
    # The check finds catalogue strings where they are shown: the English page is full of them.
    demo_client.cookies["django_language"] = "en"
    assert {"Your consents", "Sign out"} <= untranslated(
        demo_client.get(reverse("consents:list")).content.decode(), msgids
    )
    demo_client.cookies["django_language"] = "zh-hans"
    found = {}
    for url in consumer_pages():
        response = demo_client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Language"] == "zh-hans"
        left = untranslated(response.content.decode(), msgids)
        if left:
            found[url] = sorted(left)
    assert found == {}
