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


def staff_recipient_remove(apps, schema_editor) -> None:
    """Remove them again, unless the access log already names them (then they are history)."""
    AccessEvent = apps.get_model("audit", "AccessEvent")
    Partner = apps.get_model("consents", "Partner")
    Purpose = apps.get_model("consents", "Purpose")
    if AccessEvent.objects.filter(partner__slug=STAFF_PARTNER_SLUG).exists():
        return
    if AccessEvent.objects.filter(purpose__slug=STAFF_PURPOSE_SLUG).exists():
        return
    Partner.objects.filter(slug=STAFF_PARTNER_SLUG).delete()  # and its sharing
    purpose = Purpose.objects.filter(slug=STAFF_PURPOSE_SLUG).first()
    if purpose is not None:
        # The current notice is protected while the purpose points at it.
        Purpose.objects.filter(pk=purpose.pk).update(current_version=None)
        purpose.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0004_encrypt_webhook_secrets"),
        ("audit", "0002_access_events"),
    ]

    operations = [
        migrations.RunPython(staff_recipient_create, staff_recipient_remove),
    ]
