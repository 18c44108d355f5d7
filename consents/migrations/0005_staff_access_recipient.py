"""Our customer-support staff as a recipient of consumers' data, with a published notice.

Staff opening a consumer's records is recorded in the access log like any partner's access, so the
consumer sees it; the log needs a partner and a purpose to name. They used to be created on the
first such access by calling the consent services from audit; created here, audit only looks them
up (``audit.access``). The values are a frozen copy: a migration must not import code that changes.

The staff partner gets no webhook secret: it receives no webhooks, and an empty secret is the one
value the secret encryption of migration 0004 leaves alone in either direction.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

STAFF_PARTNER_SLUG = "customer-support-staff"
STAFF_PURPOSE_SLUG = "customer-support"
STAFF_NOTICE = (
    "When you contact us, or when we must check your account, our customer-support staff may open "
    "your records. Every time they do, it is recorded and shown in your data-access log."
)


def _history_record(apps, obj, created_at) -> None:
    """The change history's "created" entry (and its categories), as simple-history writes outside migrations."""
    name = obj._meta.object_name
    Historical = apps.get_model("consents", f"Historical{name}")
    if Historical.objects.filter(id=obj.pk).exists():
        return
    fields = [f.attname for f in Historical._meta.concrete_fields if f.name != "id" and not f.name.startswith("history")]
    values = {name: getattr(obj, name) for name in fields}
    record = Historical.objects.create(id=obj.pk, **values, history_date=created_at, history_type="+")
    if not hasattr(obj, "data_categories"):
        return
    Through = apps.get_model("consents", f"Historical{name}_data_categories")
    owner = f"{name.lower()}_id"
    Through.objects.bulk_create(
        Through(id=row.pk, history=record, datacategory_id=row.datacategory_id, **{owner: obj.pk})
        for row in obj.data_categories.through.objects.filter(**{owner: obj.pk})
    )


def staff_recipient_create(apps, schema_editor) -> None:
    """Create the staff partner, purpose, notice and sharing where they are missing (idempotent)."""
    DataCategory = apps.get_model("consents", "DataCategory")
    Partner = apps.get_model("consents", "Partner")
    Purpose = apps.get_model("consents", "Purpose")
    PurposeVersion = apps.get_model("consents", "PurposeVersion")
    Sharing = apps.get_model("consents", "Sharing")
    purpose, _created = Purpose.objects.get_or_create(
        slug=STAFF_PURPOSE_SLUG,
        defaults={"name": "Customer support", "category": "support", "legal_basis": "legitimate_interest"},
    )
    if purpose.current_version_id is None:
        version = PurposeVersion.objects.create(
            purpose=purpose,
            number=1,
            description=STAFF_NOTICE,
            retention="The access record is kept as long as your account exists.",
            material=False,
            change_summary="First version.",
            published_at=timezone.now(),
        )
        version.data_categories.set(DataCategory.objects.all())
        purpose.current_version = version
        purpose.save(update_fields=["current_version"])
    partner, _created = Partner.objects.get_or_create(
        slug=STAFF_PARTNER_SLUG,
        defaults={
            "name": "Customer support (our staff)",
            "kind": "internal",
            "country": settings.PORTAL_CONTROLLER["country"],
            "webhook_secret": "",
        },
    )
    sharing, created = Sharing.objects.get_or_create(partner=partner, purpose=purpose)
    if created:
        sharing.data_categories.set(DataCategory.objects.all())
    now = timezone.now()
    for obj in (purpose.current_version, purpose, partner, sharing):
        _history_record(apps, obj, now)


def staff_recipient_remove(apps, schema_editor) -> None:
    """Remove them again with their history, unless the access log already names them (then they are history)."""
    AccessEvent = apps.get_model("audit", "AccessEvent")
    if AccessEvent.objects.filter(partner__slug=STAFF_PARTNER_SLUG).exists():
        return
    if AccessEvent.objects.filter(purpose__slug=STAFF_PURPOSE_SLUG).exists():
        return
    rows = {
        "Partner": {"slug": STAFF_PARTNER_SLUG},
        "Purpose": {"slug": STAFF_PURPOSE_SLUG},
        "Sharing": {"partner__slug": STAFF_PARTNER_SLUG},
        "PurposeVersion": {"purpose__slug": STAFF_PURPOSE_SLUG},
    }
    for name, lookup in rows.items():
        pks = list(apps.get_model("consents", name).objects.filter(**lookup).values_list("pk", flat=True))
        if name in ("Sharing", "PurposeVersion"):
            through = apps.get_model("consents", f"Historical{name}_data_categories")
            through.objects.filter(history__id__in=pks).delete()
        apps.get_model("consents", f"Historical{name}").objects.filter(id__in=pks).delete()
    apps.get_model("consents", "Partner").objects.filter(slug=STAFF_PARTNER_SLUG).delete()  # and its sharing
    Purpose = apps.get_model("consents", "Purpose")
    # The current notice is protected while the purpose points at it.
    Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).update(current_version=None)
    Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).delete()  # and its notice


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0004_encrypt_webhook_secrets"),
        ("audit", "0002_access_events"),
    ]

    operations = [
        migrations.RunPython(staff_recipient_create, staff_recipient_remove),
    ]
