"""Staff roles as groups, each with the least it needs (see ``portal/roles.py``).

The mapping below is a frozen copy of ``portal.roles.ROLE_PERMISSIONS`` as of this migration;
``tests/portal/test_admin_roles.py`` checks that the live groups still match the code.
"""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES = {
    "Privacy officer": (
        "audit.export_trail",
        "audit.verify_chain",
        "audit.view_auditevent",
        "consents.add_datacategory",
        "consents.add_purpose",
        "consents.change_datacategory",
        "consents.change_purpose",
        "consents.view_datacategory",
        "consents.view_purpose",
        "consents.view_purposeversion",
        "portal.decide_privacyrequest",
        "portal.record_privacyrequestpartnertask",
        "portal.view_consentproof",
        "portal.view_privacyrequest",
        "portal.view_privacyrequestextension",
        "portal.view_privacyrequestpartnertask",
        "portal.view_user",
    ),
    "Support agent": (
        "account.view_emailaddress",
        "consents.view_consent",
        "consents.view_consentreceipt",
        "portal.view_privacyrequest",
        "portal.view_privacyrequestextension",
        "portal.view_privacyrequestpartnertask",
        "portal.view_user",
    ),
    "Partner manager": (
        "consents.add_partner",
        "consents.add_partnercredential",
        "consents.add_sharing",
        "consents.change_outboxevent",
        "consents.change_partner",
        "consents.change_partnercredential",
        "consents.change_sharing",
        "consents.view_datacategory",
        "consents.view_deliveryattempt",
        "consents.view_outboxevent",
        "consents.view_partner",
        "consents.view_partnercredential",
        "consents.view_purpose",
        "consents.view_sharing",
    ),
    "Auditor": (
        "account.view_emailaddress",
        "audit.export_trail",
        "audit.verify_chain",
        "audit.view_accessevent",
        "audit.view_auditevent",
        "auth.view_group",
        "consents.view_consent",
        "consents.view_consentreceipt",
        "consents.view_datacategory",
        "consents.view_deliveryattempt",
        "consents.view_outboxevent",
        "consents.view_partner",
        "consents.view_partnercredential",
        "consents.view_purpose",
        "consents.view_purposeversion",
        "consents.view_sharing",
        "portal.view_consentproof",
        "portal.view_privacyrequest",
        "portal.view_privacyrequestextension",
        "portal.view_privacyrequestpartnertask",
        "portal.view_user",
    ),
}


def roles_create(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # On a fresh database permissions are only created after the whole migrate run (post_migrate);
    # create them now so the groups can be given them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, using=schema_editor.connection.alias, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        permissions = []
        for label in wanted:
            app_label, codename = label.split(".")
            permissions.append(Permission.objects.using(schema_editor.connection.alias).get(content_type__app_label=app_label, codename=codename))
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def roles_remove(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_privacy_requests"),
        ("audit", "0003_role_permissions"),
        ("consents", "0003_partner_credential_feed_sequencer"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="privacyrequest",
            options={
                "ordering": ["-created_at"],
                "permissions": [("decide_privacyrequest", "Can extend or reject a privacy request")],
                "verbose_name": "privacy request",
                "verbose_name_plural": "privacy requests",
            },
        ),
        migrations.AlterModelOptions(
            name="privacyrequestpartnertask",
            options={
                "ordering": ["partner__name"],
                "permissions": [
                    ("record_privacyrequestpartnertask", "Can record a partner's confirmation received by other means")
                ],
                "verbose_name": "partner erasure task",
                "verbose_name_plural": "partner erasure tasks",
            },
        ),
        migrations.RunPython(roles_create, roles_remove),
    ]
