"""The Partner manager role manages connected apps, as it manages partner credentials.

``ROLES_GRANTED`` is a frozen addition to the roles of ``portal/migrations/0003_staff_roles.py``
(see ``privacy_requests/migrations/0002_regulator_reports.py``); ``tests/portal/test_admin_roles.py``
adds it to that mapping when it compares it with ``portal.roles``.
"""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

ROLES_GRANTED = {
    "Partner manager": (
        "consents.view_connectedapp",
        "consents.add_connectedapp",
        "consents.change_connectedapp",
    ),
}


def _permissions(apps: Apps, schema_editor: BaseDatabaseSchemaEditor, labels: tuple[str, ...]) -> list:
    Permission = apps.get_model("auth", "Permission")
    codenames = [label.split(".")[1] for label in labels]
    return list(
        Permission.objects.using(schema_editor.connection.alias).filter(
            content_type__app_label="consents", codename__in=codenames
        )
    )


def roles_grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # On a fresh database permissions are only created after the whole migrate run (post_migrate).
    app_config = apps.get_app_config("consents")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, using=schema_editor.connection.alias, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, labels in ROLES_GRANTED.items():
        group = Group.objects.using(schema_editor.connection.alias).filter(name=name).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, schema_editor, labels))


def roles_revoke(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Group = apps.get_model("auth", "Group")
    for name, labels in ROLES_GRANTED.items():
        group = Group.objects.using(schema_editor.connection.alias).filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, schema_editor, labels))


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0008_connected_apps"),
        ("portal", "0005_privacy_requests_move"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_grant, roles_revoke)]
