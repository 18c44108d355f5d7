"""Authorised agents' requests, and the permissions to read them (every role that reads the queue) and to verify one.

``ROLES_GRANTED`` is a frozen addition to the roles, as in ``0002_regulator_reports.py``.
"""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.apps.registry import Apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES_GRANTED = {
    "Privacy officer": ("privacy_requests.view_agentrequest", "privacy_requests.verify_agentrequest"),
    "Support agent": ("privacy_requests.view_agentrequest",),
    "Auditor": ("privacy_requests.view_agentrequest",),
}


def _permission(apps: Apps, schema_editor: BaseDatabaseSchemaEditor, label: str):
    app_label, codename = label.split(".")
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.using(schema_editor.connection.alias).get(
        content_type__app_label=app_label, codename=codename
    )


def roles_grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # On a fresh database permissions are only created after the whole migrate run (post_migrate).
    app_config = apps.get_app_config("privacy_requests")
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
        ('privacy_requests', '0002_regulator_reports'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AgentRequest',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('export', "A copy of the consumer's data"), ('deletion', "Deletion of the consumer's account"), ('opt_out', "Opt-out of the sale or sharing of the consumer's data")], max_length=16, verbose_name='kind')),
                ('status', models.CharField(choices=[('received', 'Received'), ('awaiting_consumer', 'Waiting for the consumer or staff'), ('confirmed', 'Confirmed by the consumer'), ('verified', "Agent's authority verified by staff"), ('declined', 'Declined by the consumer'), ('no_account', 'Closed: no account for that address')], default='received', max_length=24, verbose_name='status')),
                ('consumer_email', models.EmailField(max_length=254, verbose_name="consumer's email address")),
                ('agent_name', models.CharField(max_length=200, verbose_name="agent's name")),
                ('agent_email', models.EmailField(max_length=254, verbose_name="agent's email address")),
                ('agent_organisation', models.CharField(blank=True, max_length=200, verbose_name="agent's organisation")),
                ('document_name', models.CharField(blank=True, editable=False, max_length=200, verbose_name='permission document')),
                ('document_type', models.CharField(blank=True, max_length=64, verbose_name='document type')),
                ('document_size', models.PositiveIntegerField(default=0, verbose_name='document size (bytes)')),
                ('language', models.CharField(default='en', max_length=16, verbose_name='language')),
                ('received_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='received at')),
                ('decided_at', models.DateTimeField(blank=True, null=True, verbose_name='decided at')),
                ('confirm_nonce', models.CharField(blank=True, editable=False, max_length=32)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='verified by')),
                ('privacy_request', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='agent_request', to='privacy_requests.privacyrequest', verbose_name='privacy request')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='agent_requests', to=settings.AUTH_USER_MODEL, verbose_name='consumer')),
            ],
            options={
                'verbose_name': 'authorised agent request',
                'verbose_name_plural': 'authorised agent requests',
                'ordering': ['-received_at'],
                'permissions': [('verify_agentrequest', "Can verify an authorised agent's power of attorney")],
                'indexes': [models.Index(fields=['status', 'received_at'], name='agentrequest_queue')],
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['awaiting_consumer', 'confirmed', 'verified', 'declined']), _negated=True), ('user__isnull', False), _connector='OR'), name='agentrequest_matched_has_consumer'), models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['confirmed', 'verified', 'declined']), _negated=True), ('decided_at__isnull', False), _connector='OR'), name='agentrequest_decided_has_date')],
            },
        ),
        migrations.RunPython(roles_grant, roles_revoke),
    ]
