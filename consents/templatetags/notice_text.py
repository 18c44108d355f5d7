"""Marking stored text that is in another language than the page (WCAG 3.1.2 Language of Parts)."""

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils import translation
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

from consents.models.translations import language_of

register = template.Library()


@register.filter
def lang_attr(value: object) -> str:
    """`` lang="en"`` when ``value`` (a ``LocalizedText``) is not in the page's language, else nothing.

    Use inside the tag that holds the text: ``<p{{ text|lang_attr }}>{{ text }}</p>``.
    """
    lang = getattr(value, "lang", None)
    if lang is None or lang == language_of(translation.get_language()):
        return ""
    return format_html(' lang="{}"', lang)


@register.filter
def with_lang(value: object) -> str:
    """``value`` wrapped in ``<span lang="…">`` when it is not in the page's language, else ``value`` escaped.

    For text placed into a translated sentence (``{% blocktranslate with purpose=name|with_lang %}``).
    """
    attr = lang_attr(value)
    if not attr:
        return conditional_escape(str(value))
    return format_html("<span{}>{}</span>", attr, value)


@register.filter
def names_with_lang(objects: Iterable[Any]) -> str:
    """The translated names of models with ``l10n`` (data categories, purposes), comma-separated, each marked."""
    return mark_safe(", ".join(with_lang(obj.l10n.name) for obj in objects))  # noqa: S308 (each part escaped)
