"""Publishing a purpose's notice (flow 6): a new version, new terms, and re-consent after a material change."""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.models import Consent, ConsentStatus, DataCategory, Purpose, PurposeVersion
from consents.notifications import material_change_notify_queue
from consents.services.consents import consent_reconsent_require

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
    terms: PurposeTerms | None = None,
) -> PurposeVersion:
    """Publish a new notice for a purpose, with new ``terms`` if given.

    A material change asks everyone who agreed before to decide again.
    """
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
    version = PurposeVersion.objects.create(
        purpose=purpose,
        number=number,
        description=description,
        retention=retention,
        material=material,
        change_summary=change_summary,
        published_at=timezone.now(),
    )
    version.data_categories.set(data_categories)
    purpose.current_version = version
    purpose.save(update_fields=["current_version", *changed_terms])
    data: dict[str, Any] = {"purpose": purpose.slug, "version": number, "material": material, "summary": change_summary}
    if changed_terms:
        data["terms"] = changed_terms
    event_record(actor=actor, subject=None, action=AuditAction.PURPOSE_VERSION_PUBLISHED, target=version, data=data)
    if material and number > 1:
        stale = Consent.objects.filter(purpose=purpose, status=ConsentStatus.GRANTED).exclude(version=version)
        for consent_id in stale.order_by("pk").values_list("pk", flat=True):
            consent_reconsent_require(consent_id=consent_id, version=version, actor=actor)
        # Those asked to decide again hear of it by email (batched by a task, once per consumer).
        transaction.on_commit(partial(material_change_notify_queue, version.pk), robust=True)
    return version
