# Joins the three branches built on 0008: connected-app tokens and roles, grant receipts, notice translations.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0009_app_grant_receipts"),
        ("consents", "0009_connect_oauth"),
        ("consents", "0009_notice_translations"),
    ]

    operations = []
