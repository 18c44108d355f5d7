"""The operations dashboard's permission (given to the Privacy officer and Auditor roles) and the
partner suspension actions of the audit log.

``ROLES_GRANTED`` is a frozen addition to the roles of ``portal/migrations/0003_staff_roles.py``
(a migration must not import ``portal.roles``, which changes later);
``tests/portal/test_admin_roles.py`` adds it to that mapping when it compares it with the code.
"""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES_GRANTED = {
    "Privacy officer": ("audit.view_operations_dashboard",),
    "Auditor": ("audit.view_operations_dashboard",),
}


def _permission(apps: Apps, schema_editor: BaseDatabaseSchemaEditor, label: str):
    app_label, codename = label.split(".")
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.using(schema_editor.connection.alias).get(
        content_type__app_label=app_label, codename=codename
    )


def roles_grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # On a fresh database permissions are only created after the whole migrate run (post_migrate).
    app_config = apps.get_app_config("audit")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, using=schema_editor.connection.alias, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, labels in ROLES_GRANTED.items():
        group = Group.objects.using(schema_editor.connection.alias).filter(name=name).first()
        if group is not None:
            group.permissions.add(*(_permission(apps, schema_editor, label) for label in labels))


def roles_revoke(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Group = apps.get_model("auth", "Group")
    for name, labels in ROLES_GRANTED.items():
        group = Group.objects.using(schema_editor.connection.alias).filter(name=name).first()
        if group is not None:
            group.permissions.remove(*(_permission(apps, schema_editor, label) for label in labels))


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_digests'),
        # The role groups.
        ('portal', '0003_staff_roles'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditevent',
            options={'ordering': ['-occurred_at', '-id'], 'permissions': [('verify_chain', 'Can verify the audit chains'), ('export_trail', "Can export a consumer's signed audit trail"), ('view_operations_dashboard', 'Can view the operations dashboard')], 'verbose_name': 'audit event', 'verbose_name_plural': 'audit events'},
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('consent.granted', 'Consent given'), ('consent.revoked', 'Consent withdrawn'), ('consent.expired', 'Consent expired'), ('consent.reconsent_required', 'New notice: decision needed'), ('consent.expiry_reminder_sent', 'Consent expiry reminder sent'), ('gpc.honoured', 'Global Privacy Control signal honoured'), ('purpose.version_published', 'Purpose notice published'), ('partner.credential_created', 'Partner API credential created'), ('partner.credential_rotated', 'Partner API credential rotated'), ('partner.credential_revoked', 'Partner API credential revoked'), ('partner.event_acknowledged', 'Partner acknowledged an event'), ('partner.webhook_disabled', 'Partner webhook disabled'), ('partner.webhook_enabled', 'Partner webhook enabled'), ('partner.webhook_secret_rotated', 'Partner webhook secret rotated'), ('partner.suspended', 'Partner suspended'), ('partner.resumed', 'Partner reinstated'), ('outbox.event_redriven', 'Partner event sent again'), ('access.staff_viewed', "Staff opened a consumer's records"), ('audit.trail_exported', 'Audit trail exported'), ('privacy_request.received', 'Privacy request received'), ('privacy_request.processing', 'Privacy request being processed'), ('privacy_request.waiting_partners', 'Privacy request waiting for partners'), ('privacy_request.completed', 'Privacy request completed'), ('privacy_request.rejected', 'Privacy request rejected'), ('privacy_request.cancelled', 'Privacy request cancelled'), ('privacy_request.downloaded', 'Data export downloaded'), ('privacy_request.file_deleted', 'Data export file deleted'), ('privacy_request.erasure_requested', 'Partners asked to erase data'), ('privacy_request.partner_acknowledged', 'Partner confirmed the erasure'), ('privacy_request.partner_failed', 'Partner reported a failed erasure'), ('privacy_request.partner_recorded', 'Partner confirmation recorded by staff'), ('privacy_request.extended', 'Privacy request deadline extended'), ('privacy_request.escalated', 'Overdue privacy request escalated'), ('privacy_request.retention_applied', 'Privacy request retention applied'), ('consent_proof.purged', 'Expired consent proofs purged'), ('profile.updated', 'Profile updated'), ('account.scrubbed', 'Account erased'), ('account.free_text_scrubbed', 'Free text erased with the account'), ('security.signed_up', 'Account created'), ('security.logged_in', 'Signed in'), ('security.password_changed', 'Password changed'), ('security.password_set', 'Password set'), ('security.password_reset', 'Password reset'), ('security.email_added', 'Email address added'), ('security.email_removed', 'Email address removed'), ('security.email_changed', 'Primary email address changed'), ('security.email_confirmed', 'Email address confirmed'), ('security.mfa_added', 'Two-factor authentication turned on'), ('security.mfa_removed', 'Two-factor authentication turned off'), ('security.mfa_reset', 'Recovery codes regenerated')], max_length=64, verbose_name='action'),
        ),
        migrations.AddIndex(
            model_name="accessdaily",
            index=models.Index(fields=["day", "partner"], name="accessdaily_by_day_partner"),
        ),
        migrations.RunPython(roles_grant, roles_revoke),
    ]
