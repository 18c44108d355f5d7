"""The rich authorisation details (RFC 9396) type this portal publishes, and its validation against an app.

An app asks for exactly one object of type ``portal_data_access``::

    {
      "type": "portal_data_access",
      "purpose": "personalised-offers",
      "data_categories": [
        {"category": "transactions", "required": true, "reason": "To show your spending."},
        {"category": "balances"}
      ],
      "duration": {"type": "time_bound", "period_days": 90},
      "lookback_days": 365
    }

Categories are optional unless ``required`` is true; a required category must say why, in one
string or per language (``"reason": {"en": "To show your spending.", "zh-Hans": "用于显示您的支出。"}``,
BCP 47 tags): the consent screen shows the consumer's language, else the first given, marked with
its language. Everything
is checked against the app's registration (allowed and published purpose, allowed categories that
are in the purpose's current notice, longest duration, longest lookback). Error descriptions are
for developers and stay in ASCII English (RFC 6749 section 5.2).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from django.utils import translation

from consents.models import ConnectedApp, DataCategory, DurationType, Purpose
from consents.models.translations import LocalizedText, language_of

DETAILS_TYPE = "portal_data_access"
REASON_MAX_LENGTH = 300


class DetailsError(Exception):
    """The request's authorization_details are malformed or outside the app's registration."""

    def __init__(self, description: str, error: str = "invalid_authorization_details") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class RequestedCategory:
    category: DataCategory
    required: bool
    reason: str


@dataclass(frozen=True)
class RequestedAccess:
    """A validated request: the purpose with its current notice, the categories, duration and lookback."""

    purpose: Purpose
    categories: list[RequestedCategory]
    duration_type: str
    period_days: int | None
    lookback_days: int | None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_label(self) -> str:
        return str(DurationType(self.duration_type).label)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DetailsError(f"{name} must be a positive integer.")
    return value


def _reason(value: Any) -> str:
    """The reason in the consumer's language: a plain string as given, or the best of a per-language object.

    A text from the object in another language than the page's is a ``LocalizedText`` carrying
    that language, so the screen can mark it (WCAG 3.1.2); a plain string's language is unknown.
    """
    if isinstance(value, str):
        texts = {"": value}
    elif isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        texts = dict(value)
    else:
        raise DetailsError("reason must be a string or an object of language tags to strings.")
    if any(len(text) > REASON_MAX_LENGTH for text in texts.values()):
        raise DetailsError(f"A reason has at most {REASON_MAX_LENGTH} characters.")
    if "" in texts:
        return texts[""].strip()
    page = language_of(translation.get_language())
    given = {tag: text.strip() for tag, text in texts.items() if text.strip()} or texts
    # The page's own language first; then a variant of it (en-GB on an English page, zh-Hant on a
    # Simplified Chinese one), marked with its tag since it may be written differently; then any.
    for tag, text in given.items():
        if tag.lower() == page:
            return text
    base = page.split("-")[0]
    tag, text = next(
        ((tag, text) for tag, text in given.items() if tag.lower().split("-")[0] == base), next(iter(given.items()))
    )
    return LocalizedText(text.strip(), tag)


def details_parse(raw: str) -> dict[str, Any]:
    """The single object of the published type in an ``authorization_details`` JSON array."""
    try:
        details = json.loads(raw)
    except ValueError as error:
        raise DetailsError("authorization_details is not valid JSON.") from error
    if not isinstance(details, list) or len(details) != 1 or not isinstance(details[0], dict):
        raise DetailsError("authorization_details must be a JSON array with exactly one object.")
    obj = details[0]
    if obj.get("type") != DETAILS_TYPE:
        raise DetailsError(f'The only supported authorization_details type is "{DETAILS_TYPE}".')
    return obj


def details_validate(obj: dict[str, Any], app: ConnectedApp) -> RequestedAccess:
    """Check one ``portal_data_access`` object against what the app is registered for."""
    slug = obj.get("purpose")
    if not isinstance(slug, str):
        raise DetailsError("purpose must be a purpose identifier.")
    purpose = app.purposes.published().select_related("current_version").filter(slug=slug).first()
    if purpose is None or purpose.current_version is None:
        raise DetailsError("The purpose is not one this app is registered for.")
    noticed = {c.slug: c for c in purpose.current_version.data_categories.all()}
    allowed = set(app.data_categories.values_list("slug", flat=True))

    entries = obj.get("data_categories")
    if not isinstance(entries, list) or not entries:
        raise DetailsError("data_categories must be a non-empty array.")
    categories: list[RequestedCategory] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("category"), str):
            raise DetailsError('Each data_categories entry must be an object with a "category".')
        slug = entry["category"]
        if slug not in noticed or slug not in allowed:
            raise DetailsError(f"The data category {slug!r} is not allowed for this app and purpose.")
        if any(c.category.slug == slug for c in categories):
            raise DetailsError(f"The data category {slug!r} is listed twice.")
        required = entry.get("required", False)
        if not isinstance(required, bool):
            raise DetailsError("required must be true or false.")
        reason = _reason(entry.get("reason", ""))
        if required and not reason:
            raise DetailsError("A required category needs a reason.")
        categories.append(RequestedCategory(noticed[slug], required, reason))

    duration = obj.get("duration")
    if not isinstance(duration, dict) or duration.get("type") not in DurationType.values:
        raise DetailsError("duration.type must be one_time, time_bound or persistent.")
    duration_type = duration["type"]
    period_days: int | None = None
    if duration_type == DurationType.TIME_BOUND:
        period_days = _positive_int(duration.get("period_days"), "duration.period_days")
        if app.max_duration_days is not None and period_days > app.max_duration_days:
            raise DetailsError("duration.period_days is longer than this app may ask for.")
    elif duration_type == DurationType.PERSISTENT and app.max_duration_days is not None:
        raise DetailsError("This app may only ask for time-bound or one-time access.")

    lookback = obj.get("lookback_days")
    lookback_days = None if lookback is None else _positive_int(lookback, "lookback_days")
    if app.max_lookback_days is not None and (lookback_days is None or lookback_days > app.max_lookback_days):
        raise DetailsError("lookback_days is missing or longer than this app may ask for.")
    return RequestedAccess(purpose, categories, duration_type, period_days, lookback_days, obj)


def details_granted(
    access: RequestedAccess, categories: list[DataCategory], duration_type: str, period_days: int | None
) -> dict[str, Any]:
    """The RFC 9396 object as the consumer granted it (the app learns it from the token response)."""
    duration: dict[str, Any] = {"type": duration_type}
    if period_days is not None:
        duration["period_days"] = period_days
    slugs = {c.slug for c in categories}
    return {
        "type": DETAILS_TYPE,
        "purpose": access.purpose.slug,
        "data_categories": [
            {"category": c.category.slug, "required": c.required} for c in access.categories if c.category.slug in slugs
        ],
        "duration": duration,
        "lookback_days": access.lookback_days,
    }
