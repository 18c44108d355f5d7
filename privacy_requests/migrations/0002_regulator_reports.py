"""The permission to view the regulator reports, given to the Privacy officer and Auditor roles.

``ROLES_GRANTED`` is a frozen addition to the roles of ``portal/migrations/0003_staff_roles.py``
(a migration must not import ``portal.roles``, which changes later);
``tests/portal/test_admin_roles.py`` adds it to that mapping when it compares it with the code.
"""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES_GRANTED = {
    "Privacy officer": ("privacy_requests.view_regulator_reports",),
    "Auditor": ("privacy_requests.view_regulator_reports",),
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
        ("privacy_requests", "0001_initial"),
        # The groups, and the move of this app's content types (which replaces any created before it).
        ("portal", "0005_privacy_requests_move"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="privacyrequest",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("decide_privacyrequest", "Can extend or reject a privacy request"),
                    ("view_regulator_reports", "Can view the regulator reports"),
                ],
                "verbose_name": "privacy request",
                "verbose_name_plural": "privacy requests",
            },
        ),
        migrations.RunPython(roles_grant, roles_revoke),
    ]
