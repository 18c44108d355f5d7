"""The privacy-request models now belong to the ``privacy_requests`` app (its ``0001_initial``).

The tables keep their names, so the move only removes the models from this app's migration state.
Their content types follow them, with the permissions that hang off them, so the staff groups keep
what they were given and admin log entries keep pointing at the same rows.
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

MOVED_MODELS = (
    "consentproof",
    "historicalprivacyrequest",
    "historicalprivacyrequestextension",
    "historicalprivacyrequestpartnertask",
    "privacyrequest",
    "privacyrequestextension",
    "privacyrequestpartnertask",
)


def _content_types_relabel(apps: Apps, schema_editor: BaseDatabaseSchemaEditor, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    for model in MOVED_MODELS:
        old = content_types.filter(app_label=source, model=model)
        if old.exists():
            # A row under the new label exists only if post_migrate ran between the two migrations
            # (``migrate privacy_requests 0001``); its permissions are new and nobody holds them yet.
            content_types.filter(app_label=target, model=model).delete()
            old.update(app_label=target)


def content_types_forward(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _content_types_relabel(apps, schema_editor, "portal", "privacy_requests")


def content_types_backward(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _content_types_relabel(apps, schema_editor, "privacy_requests", "portal")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0004_scrub_free_text"),
        ("privacy_requests", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # Models that point at others go first, so no state model refers to a deleted one.
            state_operations=[
                migrations.DeleteModel(name="HistoricalPrivacyRequest"),
                migrations.DeleteModel(name="HistoricalPrivacyRequestExtension"),
                migrations.DeleteModel(name="HistoricalPrivacyRequestPartnerTask"),
                migrations.DeleteModel(name="PrivacyRequestExtension"),
                migrations.DeleteModel(name="PrivacyRequestPartnerTask"),
                migrations.DeleteModel(name="PrivacyRequest"),
                migrations.DeleteModel(name="ConsentProof"),
            ],
        ),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
