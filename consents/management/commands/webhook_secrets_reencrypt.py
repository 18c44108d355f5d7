"""Re-encrypt every stored webhook signing secret with the first key of WEBHOOK_SECRET_KEY.

To rotate the key: put the new key first in WEBHOOK_SECRET_KEY (keep the old one after it), deploy,
run this command, then drop the old key. The secrets themselves do not change.
"""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from consents.models import Partner


class Command(BaseCommand):
    help = "Re-encrypt partners' webhook signing secrets with the current (first) WEBHOOK_SECRET_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            # Reading decrypts with whichever configured key fits; writing encrypts with the first. A
            # queryset update, so the partners' change history gets no entry for an unchanged record.
            # A partner without secrets (our own staff as a recipient) has nothing to re-encrypt.
            partners = Partner.objects.exclude(webhook_secret="", webhook_secret_previous="")
            rows = partners.select_for_update().values_list("pk", "webhook_secret", "webhook_secret_previous")
            for pk, secret, previous in rows:
                Partner.objects.filter(pk=pk).update(webhook_secret=secret, webhook_secret_previous=previous)
                count += 1
        self.stdout.write(f"Re-encrypted the webhook secrets of {count} partners.")
