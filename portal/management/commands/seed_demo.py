"""Create the demo consumer, staff member and the data in ``portal.demo`` (idempotent). Never in production."""

import os
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal import roles
from portal.demo.catalogue import catalogue_ensure
from portal.demo.history import access_history_ensure, consumer_consents_ensure
from portal.demo.operations import operations_history_ensure
from portal.demo.partner import DEMO_APP_CLIENT_ID, DEMO_PARTNER, DEMO_PARTNER_LISTEN, demo_partner_ensure
from portal.models import User

DEMO_CONSUMER = "demo@example.com"
# A second consumer who reads the portal in Chinese, to see notices and local times as they would.
DEMO_CONSUMER_ZH = "demo-zh@example.com"
# Each demo consumer's language and time zone, as a browser would have set them at signup.
DEMO_CONSUMER_LOCALE = {DEMO_CONSUMER: ("en", "America/New_York"), DEMO_CONSUMER_ZH: ("zh-hans", "Asia/Shanghai")}
DEMO_STAFF = "staff@example.com"
# One staff member per role (portal/roles.py), to try the admin with only what each job needs.
DEMO_ROLES = {
    "privacy-officer@example.com": roles.PRIVACY_OFFICER,
    "support@example.com": roles.SUPPORT_AGENT,
    "partner-manager@example.com": roles.PARTNER_MANAGER,
    "auditor@example.com": roles.AUDITOR,
}


def demo_user_ensure(*, email: str, password: str, staff: bool, superuser: bool = False) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"is_staff": staff, "is_superuser": superuser})
    if created or not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


def demo_consumer_locale_ensure(*, user: User) -> None:
    """The consumer's language and time zone, unless they already chose their own."""
    language, zone = DEMO_CONSUMER_LOCALE[user.email]
    if not user.time_zone:
        user.language, user.time_zone = user.language or language, zone
        user.save(update_fields=["language", "time_zone"])


def demo_mfa_ensure(*, user: User) -> tuple[str, list[str]]:
    """TOTP and recovery codes, as the admin requires: the secret and three unused codes."""
    totp = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if totp is None:
        totp = TOTP.activate(user, generate_totp_secret()).instance
    codes = Authenticator.objects.filter(user=user, type=Authenticator.Type.RECOVERY_CODES).first()
    if codes is None:
        codes = RecoveryCodes.activate(user).instance
    return decrypt(totp.data["secret"]), RecoveryCodes(codes).get_unused_codes()[:3]


class Command(BaseCommand):
    help = "Create or refresh the demo data (never in production)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run when PORTAL_ENV=production.")
        password = os.environ.get("DEMO_PASSWORD", "demo-portal-2026")
        with transaction.atomic():
            consumer = demo_user_ensure(email=DEMO_CONSUMER, password=password, staff=False)
            consumer_zh = demo_user_ensure(email=DEMO_CONSUMER_ZH, password=password, staff=False)
            for user in (consumer, consumer_zh):
                demo_consumer_locale_ensure(user=user)
            staff = demo_user_ensure(email=DEMO_STAFF, password=password, staff=True, superuser=True)
            second_factors = {DEMO_STAFF: demo_mfa_ensure(user=staff)}
            roles.staff_roles_ensure()
            for email, role in DEMO_ROLES.items():
                member = demo_user_ensure(email=email, password=password, staff=True)
                member.groups.add(Group.objects.get(name=role))
                second_factors[email] = demo_mfa_ensure(user=member)
            catalogue_ensure(staff=staff)
            partner_config = demo_partner_ensure(staff=staff)
            for user in (consumer, consumer_zh):
                consumer_consents_ensure(consumer=user, staff=staff)
                access_history_ensure(consumer=user, staff=staff)
            operations_history_ensure()
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  consumer: {DEMO_CONSUMER} / {password}")
        self.stdout.write(f"  consumer reading in Chinese: {DEMO_CONSUMER_ZH} / {password}")
        logins = {DEMO_STAFF: "superuser", **DEMO_ROLES}
        for email, (secret, unused) in second_factors.items():
            self.stdout.write(f"  staff ({logins[email]}): {email} / {password}")
            self.stdout.write(f"            two-factor (TOTP) secret for an authenticator app: {secret}")
            self.stdout.write(f"            or a one-time recovery code: {', '.join(unused)}")
        self.stdout.write(f"  demo partner ({DEMO_PARTNER}) receives webhooks on {DEMO_PARTNER_LISTEN}")
        self.stdout.write(f"            its API credentials and its connected app's: {partner_config}")
        self.stdout.write(f"            connect page: http://{DEMO_PARTNER_LISTEN}/ (client id {DEMO_APP_CLIENT_ID})")
