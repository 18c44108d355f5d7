"""Consumer-facing text stored per language: one JSON object per row, ``{language: {field: text}}``.

Chosen over django-modeltranslation: a notice version is immutable and published whole, so its
texts in every language are one value written once by the publish service and validated there;
a JSON object needs no column per language (adding a language needs no migration), keeps
django-simple-history's copies complete, and lets a page know when it fell back to another
language so the text can carry ``lang`` (WCAG 3.1.2). The plain columns (``name``,
``description``…) keep the text in the default language for staff pages, search and the audit
trail.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.utils import translation

Translations = dict[str, dict[str, str]]


def languages() -> list[str]:
    """The language codes the site ships, default language first."""
    codes = [code for code, _name in settings.LANGUAGES]
    return sorted(codes, key=lambda code: code != settings.LANGUAGE_CODE)


def language_of(code: str | None) -> str:
    """The shipped language for an active language code (``zh-Hans``, ``zh-hans``, ``en-gb``)."""
    code = (code or settings.LANGUAGE_CODE).lower()
    shipped = languages()
    if code in shipped:
        return code
    base = code.split("-")[0]
    return next((c for c in shipped if c.split("-")[0] == base), settings.LANGUAGE_CODE)


class LocalizedText(str):
    """A text with the language it is written in, so a template can mark text in another language."""

    lang: str

    def __new__(cls, text: str, lang: str) -> "LocalizedText":
        value = super().__new__(cls, text)
        value.lang = lang
        return value


def translated(
    translations: Mapping[str, Mapping[str, str]], field: str, fallback: str, language: str | None = None
) -> LocalizedText:
    """``field`` in ``language`` (the active one by default), else in the default language, else ``fallback``."""
    wanted = language_of(language or translation.get_language())
    for code in (wanted, settings.LANGUAGE_CODE):
        text = (translations.get(code) or {}).get(field)
        if text:
            return LocalizedText(text, code)
    return LocalizedText(fallback, settings.LANGUAGE_CODE)


def missing_languages(translations: Mapping[str, Mapping[str, str]], fields: Iterable[str]) -> list[str]:
    """The shipped languages in which any of ``fields`` is empty."""
    fields = list(fields)
    return [
        code
        for code in languages()
        if any(not str((translations.get(code) or {}).get(field) or "").strip() for field in fields)
    ]


class Localized:
    """``obj.l10n.name``: a model's translated fields in the active language, for templates."""

    def __init__(self, obj: Any, language: str | None = None) -> None:
        self._obj = obj
        self._language = language

    def __getattr__(self, field: str) -> LocalizedText:
        if field.startswith("_"):
            raise AttributeError(field)
        return translated(self._obj.translations or {}, field, getattr(self._obj, field, ""), self._language)


class TranslatedMixin:
    """Models with a ``translations`` JSON field (``{language: {field: text}}``)."""

    translations: Translations

    @property
    def l10n(self) -> Localized:
        return Localized(self)

    def in_language(self, language: str) -> Localized:
        return Localized(self, language)
