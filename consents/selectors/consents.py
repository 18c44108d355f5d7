"""Reads for the consumer's consent pages: cards, the dashboard summary and notice diffs."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from consents.diff import DiffSegment, text_diff
from consents.models import (
    Consent,
    ConsentMethod,
    ConsentStatus,
    DataCategory,
    DurationType,
    GpcSignal,
    Partner,
    Purpose,
    PurposeQuerySet,
    PurposeVersion,
    Sharing,
)
from consents.models.translations import LocalizedText
from consents.selectors.propagation import PartnerDeliveryState, consent_delivery_states
from portal.models import User

# Display states of a card beyond the consent statuses.
UNDECIDED = "undecided"
ESSENTIAL = "essential"


@dataclass
class ConsentCard:
    """Everything the consumer needs to decide about one purpose, and their decision so far."""

    purpose: Purpose
    consent: Consent | None
    sharings: list[Sharing]
    deliveries: dict[int, PartnerDeliveryState] = field(default_factory=dict)

    @property
    def recipients(self) -> list[tuple[Sharing, PartnerDeliveryState | None]]:
        """Each partner receiving the data, with how far the consumer's latest change has got to it."""
        return [(sharing, self.deliveries.get(sharing.partner_id)) for sharing in self.sharings]

    @property
    def version(self) -> PurposeVersion:
        assert self.purpose.current_version is not None
        return self.purpose.current_version

    @property
    def data_categories(self) -> list[DataCategory]:
        return list(self.version.data_categories.all())

    @property
    def state(self) -> str:
        """``essential``, ``undecided`` or the consent's status; a lapsed grant counts as expired."""
        if self.purpose.is_essential:
            return ESSENTIAL
        if self.consent is None:
            return UNDECIDED
        if self.consent.status == ConsentStatus.GRANTED and not self.consent.is_active:
            return ConsentStatus.EXPIRED
        if (
            self.consent.status == ConsentStatus.GRANTED
            and self.consent.version.number < self.purpose.material_version_number
        ):
            # A material notice was published and its run has not reached this consent yet.
            return ConsentStatus.RECONSENT_REQUIRED
        return self.consent.status

    @property
    def can_grant(self) -> bool:
        return self.state in {UNDECIDED, ConsentStatus.REVOKED, ConsentStatus.EXPIRED}

    @property
    def can_withdraw(self) -> bool:
        return self.state in {ConsentStatus.GRANTED, ConsentStatus.RECONSENT_REQUIRED}

    @property
    def needs_review(self) -> bool:
        return self.state == ConsentStatus.RECONSENT_REQUIRED

    @property
    def refused(self) -> bool:
        """Withdrawn without ever having been granted: a recorded refusal."""
        return self.state == ConsentStatus.REVOKED and self.consent is not None and self.consent.granted_at is None

    @property
    def by_gpc(self) -> bool:
        return (
            self.state == ConsentStatus.REVOKED
            and self.consent is not None
            and self.consent.method == ConsentMethod.GPC
        )

    @property
    def is_time_bound(self) -> bool:
        return self.purpose.default_duration_type == DurationType.TIME_BOUND

    @property
    def is_one_time(self) -> bool:
        return self.purpose.default_duration_type == DurationType.ONE_TIME

    @property
    def ends_if_granted_now(self) -> datetime | None:
        """When a time-bound consent given now would end, so the consumer sees the period first."""
        if not self.is_time_bound or not self.purpose.default_period_days:
            return None
        return timezone.now() + timedelta(days=self.purpose.default_period_days)

    @property
    def agreed_to_older_version(self) -> bool:
        return self.consent is not None and self.consent.version_id != self.purpose.current_version_id

    @property
    def has_sensitive_data(self) -> bool:
        return any(category.sensitive for category in self.data_categories)


def _purposes_for_cards(purposes: PurposeQuerySet) -> PurposeQuerySet:
    return purposes.select_related("current_version").prefetch_related(
        "current_version__data_categories",
        Prefetch(
            "sharings",
            queryset=Sharing.objects.filter(is_active=True)
            .select_related("partner")
            .prefetch_related("data_categories")
            .order_by("partner__name"),
            to_attr="active_sharings",
        ),
    )


def consent_cards(user: User) -> list[ConsentCard]:
    """Every published purpose with the consumer's decision about it, in display order.

    A fixed number of queries however many purposes, partners and categories there are.
    """
    purposes = _purposes_for_cards(Purpose.objects.published())
    consents = {c.purpose_id: c for c in Consent.objects.filter(user=user).select_related("version")}
    states = consent_delivery_states(consents.values())
    return [
        ConsentCard(p, consents.get(p.pk), p.active_sharings, _by_partner(states, consents.get(p.pk)))  # type: ignore[attr-defined]
        for p in purposes
    ]


def _by_partner(
    states: dict[int, list[PartnerDeliveryState]], consent: Consent | None
) -> dict[int, PartnerDeliveryState]:
    if consent is None:
        return {}
    return {state.partner.pk: state for state in states.get(consent.pk, [])}


def consent_card(user: User, slug: str) -> ConsentCard | None:
    """One purpose's card for the consumer, or ``None`` when no such purpose is published."""
    purpose = _purposes_for_cards(Purpose.objects.published().filter(slug=slug)).first()
    if purpose is None:
        return None
    consent = Consent.objects.filter(user=user, purpose=purpose).select_related("version").first()
    states = consent_delivery_states([consent]) if consent is not None else {}
    return ConsentCard(purpose, consent, purpose.active_sharings, _by_partner(states, consent))  # type: ignore[attr-defined]


def gpc_signal_for(user: User) -> GpcSignal | None:
    return GpcSignal.objects.filter(user=user).first()


@dataclass
class GpcNotice:
    """That (and when) the consumer's Global Privacy Control signal was honoured, and what it changed."""

    honoured_at: datetime
    purpose_names: list[str]


def gpc_notice(signal: GpcSignal | None, purposes: list[Purpose]) -> GpcNotice | None:
    if signal is None:
        return None
    names = {p.slug: str(p.l10n.name) for p in purposes}
    return GpcNotice(signal.honoured_at, [names.get(slug, slug) for slug in signal.purposes])


@dataclass
class ConsentSummary:
    """The dashboard's overview of the consumer's consents."""

    granted: int = 0
    revoked: int = 0
    expired: int = 0
    reconsent_required: int = 0
    undecided: int = 0
    essential: int = 0
    next_expiry: Consent | None = None
    reconsent: list[Consent] = field(default_factory=list)
    gpc: GpcNotice | None = None

    @property
    def total(self) -> int:
        return self.granted + self.revoked + self.expired + self.reconsent_required + self.undecided + self.essential


def consent_summary(user: User) -> ConsentSummary:
    """Counts by state, the next expiry, the purposes awaiting re-consent and the GPC notice (three queries)."""
    purposes = list(Purpose.objects.published())
    consents = {
        c.purpose_id: c
        for c in Consent.objects.filter(user=user, purpose__in=[p.pk for p in purposes]).select_related("version")
    }
    counts: Counter[str] = Counter()
    summary = ConsentSummary()
    now = next_expiry_at = timezone.now()
    for purpose in purposes:
        consent = consents.get(purpose.pk)
        if consent is not None:
            consent.purpose = purpose
        state = ConsentCard(purpose, consent, []).state
        counts[state] += 1
        expires_at = consent.expires_at if consent is not None and state == ConsentStatus.GRANTED else None
        if expires_at and expires_at > now and (summary.next_expiry is None or expires_at < next_expiry_at):
            summary.next_expiry, next_expiry_at = consent, expires_at
        if state == ConsentStatus.RECONSENT_REQUIRED and consent:
            summary.reconsent.append(consent)
    summary.granted = counts[ConsentStatus.GRANTED]
    summary.revoked = counts[ConsentStatus.REVOKED]
    summary.expired = counts[ConsentStatus.EXPIRED]
    summary.reconsent_required = counts[ConsentStatus.RECONSENT_REQUIRED]
    summary.undecided = counts[UNDECIDED]
    summary.essential = counts[ESSENTIAL]
    summary.gpc = gpc_notice(gpc_signal_for(user), purposes)
    return summary


@dataclass
class NoticeDiff:
    """What changed between the notice the consumer agreed to and the current one."""

    old: PurposeVersion
    new: PurposeVersion
    description: list[DiffSegment]
    retention: list[DiffSegment]
    categories: list[tuple[str, DataCategory]]
    changes: list[PurposeVersion]
    # The language both texts are compared in: the consumer's when both notices have it.
    language: LocalizedText = field(default_factory=lambda: LocalizedText("", settings.LANGUAGE_CODE))
    recipients: list[tuple[str, Partner]] = field(default_factory=list)

    @property
    def categories_changed(self) -> bool:
        return any(op != "equal" for op, _category in self.categories)


def _recipients_diff(purpose_id: int, agreed_at: datetime) -> list[tuple[str, Partner]]:
    """Partners now receiving the purpose's data against those that did when the consumer agreed.

    Sharings are not part of a notice version, so their history (django-simple-history) says who
    received the data at the moment of the consumer's decision.
    """
    before = set(
        Sharing.history.as_of(agreed_at)
        .filter(purpose_id=purpose_id, is_active=True)
        .values_list("partner_id", flat=True)
    )
    now = set(Sharing.objects.filter(purpose_id=purpose_id, is_active=True).values_list("partner_id", flat=True))
    partners = Partner.objects.in_bulk(before | now)
    ops = (
        dict.fromkeys(before & now, "equal")
        | dict.fromkeys(before - now, "delete")
        | dict.fromkeys(now - before, "insert")
    )
    return sorted(((op, partners[pk]) for pk, op in ops.items() if pk in partners), key=lambda item: item[1].name)


def notice_diff(old: PurposeVersion, new: PurposeVersion, *, agreed_at: datetime | None = None) -> NoticeDiff:
    """The changes from ``old`` to ``new``, in the consumer's language when both notices have it.

    With ``agreed_at`` (when the consumer decided) the recipients' changes too.
    """
    language = new.l10n.description.lang
    if old.l10n.description.lang != language:
        language = settings.LANGUAGE_CODE
    old_text, new_text = old.in_language(language), new.in_language(language)
    old_categories = set(old.data_categories.all())
    new_categories = set(new.data_categories.all())
    categories = sorted(
        [("delete", c) for c in old_categories - new_categories]
        + [("insert", c) for c in new_categories - old_categories]
        + [("equal", c) for c in old_categories & new_categories],
        key=lambda item: str(item[1].l10n.name),
    )
    changes = list(
        PurposeVersion.objects.filter(
            purpose_id=new.purpose_id, number__gt=old.number, number__lte=new.number
        ).order_by("number")
    )
    return NoticeDiff(
        old=old,
        new=new,
        description=text_diff(old_text.description, new_text.description),
        retention=text_diff(old_text.retention, new_text.retention),
        categories=categories,
        changes=changes,
        language=LocalizedText("", language),
        recipients=_recipients_diff(new.purpose_id, agreed_at) if agreed_at is not None else [],
    )
