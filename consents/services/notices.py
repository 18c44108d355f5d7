"""Publishing a purpose's notice (flow 6): a new version, new terms, and re-consent after a material change."""

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import DataCategory, Purpose, PurposeVersion
from consents.models.translations import Translations, missing_languages
from consents.services.publication import publication_run_start

# What a notice says in each language; a change summary is needed only where one is written.
NOTICE_FIELDS = ("name", "description", "retention", "change_summary")
REQUIRED_NOTICE_FIELDS = ("name", "description", "retention")
CATEGORY_FIELDS = ("name",)


def language_names(codes: Iterable[str]) -> str:
    """``English, Simplified Chinese`` for a list of language codes, in the active language."""
    names = dict(settings.LANGUAGES)
    return ", ".join(str(names.get(code, code)) for code in codes)


def notice_untranslated(translations: Mapping[str, Mapping[str, str]], categories: Iterable[DataCategory]) -> list[str]:
    """Why a notice cannot be published yet: a language it or one of its data categories lacks."""
    problems: list[str] = []
    fields = list(REQUIRED_NOTICE_FIELDS)
    if any(str(text.get("change_summary") or "").strip() for text in translations.values()):
        fields.append("change_summary")
    missing = missing_languages(translations, fields)
    if missing:
        problems.append(
            str(
                format_lazy(
                    _(
                        "The notice has no translation in: {languages}. Give its name, description, retention "
                        "and change summary in every language."
                    ),
                    languages=language_names(missing),
                )
            )
        )
    for category in categories:
        # The name column is the default language's, so only the other languages need an entry.
        stored = {settings.LANGUAGE_CODE: {"name": category.name}} | (category.translations or {})
        category_missing = missing_languages(stored, CATEGORY_FIELDS)
        if category_missing:
            problems.append(
                str(
                    format_lazy(
                        _("The data category “{category}” has no name in: {languages}. Translate it first."),
                        category=category.name,
                        languages=language_names(category_missing),
                    )
                )
            )
    return problems


class NoticeUntranslated(DomainError):
    """A notice (or one of its data categories) lacks a language the site ships."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems), "notice_untranslated")
        self.problems = problems


# Consumers who agreed under another legal basis or GPC coverage agreed to something else.
MATERIAL_TERMS = frozenset({"legal_basis", "gpc_covered"})


@dataclass(frozen=True)
class PurposeTerms:
    """The fields of a purpose the consumer is told before deciding, beside the notice text.

    They change only with a new notice, so the change is published, audited and, when material,
    put to everyone who agreed before (with receipts and partner events).
    """

    legal_basis: str
    gpc_covered: bool
    default_duration_type: str
    default_period_days: int | None

    @classmethod
    def of(cls, purpose: Purpose) -> "PurposeTerms":
        return cls(
            legal_basis=purpose.legal_basis,
            gpc_covered=purpose.gpc_covered,
            default_duration_type=purpose.default_duration_type,
            default_period_days=purpose.default_period_days,
        )


@transaction.atomic
def purpose_version_publish(
    *,
    purpose: Purpose,
    description: str,
    retention: str,
    data_categories: Iterable[DataCategory],
    material: bool,
    change_summary: str,
    actor: Actor,
    translations: Mapping[str, Mapping[str, str]],
    terms: PurposeTerms | None = None,
    name: str | None = None,
) -> PurposeVersion:
    """Publish a new notice for a purpose, with new ``terms`` if given.

    ``description``, ``retention``, ``change_summary`` and ``name`` (the purpose's, unchanged by
    default) are the default language's text; ``translations`` gives them in the other languages
    (``{language: {field: text}}``). A notice without every shipped language, or with a data
    category that lacks one, is refused with ``NoticeUntranslated``.
    A material change asks everyone who agreed before to decide again.
    """
    data_categories = list(data_categories)
    default_text = {
        "name": name or purpose.name,
        "description": description,
        "retention": retention,
        "change_summary": change_summary,
    }
    texts: Translations = {
        code: {field: str(text.get(field) or "").strip() for field in NOTICE_FIELDS}
        for code, text in translations.items()
        if code != settings.LANGUAGE_CODE
    }
    texts[settings.LANGUAGE_CODE] = default_text
    problems = notice_untranslated(texts, data_categories)
    if problems:
        raise NoticeUntranslated(problems)
    # No-key update lock: consents being inserted meanwhile take a key-share lock on this row
    # and must not wait for it; grants in flight hold a share lock that this waits for.
    purpose = Purpose.objects.select_for_update(no_key=True).get(pk=purpose.pk)
    changed_terms: dict[str, list[Any]] = {}
    if terms is not None:
        before = asdict(PurposeTerms.of(purpose))
        for field, value in asdict(terms).items():
            if before[field] != value:
                changed_terms[field] = [before[field], value]
                setattr(purpose, field, value)
    number = (purpose.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    if number > 1 and MATERIAL_TERMS & changed_terms.keys():
        material = True
    purpose.name = default_text["name"]
    purpose.translations = {code: {"name": text["name"]} for code, text in texts.items()}
    version = PurposeVersion.objects.create(
        purpose=purpose,
        number=number,
        description=description,
        retention=retention,
        material=material,
        change_summary=change_summary,
        published_at=timezone.now(),
        translations=texts,
    )
    version.data_categories.set(data_categories)
    purpose.current_version = version
    fields = ["current_version", "name", "translations", *changed_terms]
    if material and number > 1:
        # From this commit on, grants of older notices no longer count (the consent checks compare
        # with this number); the publication run then records the change on each of them.
        purpose.material_version_number = number
        fields.append("material_version_number")
    purpose.save(update_fields=fields)
    data: dict[str, Any] = {"purpose": purpose.slug, "version": number, "material": material, "summary": change_summary}
    if changed_terms:
        data["terms"] = changed_terms
    event_record(actor=actor, subject=None, action=AuditAction.PURPOSE_VERSION_PUBLISHED, target=version, data=data)
    if material and number > 1:
        publication_run_start(version=version, actor=actor)
    return version
