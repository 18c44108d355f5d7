"""The consumer's email settings link: in every notification email, usable without logging in.

The link carries a signed, expiring token naming the consumer (``django.core.signing``); it opens
a page to change the three notification settings, and its one-click form (RFC 8058, the
``List-Unsubscribe`` headers) turns off the kind of email it came with.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from audit.models import NotificationKind
from portal.models import User

SALT = "portal.notification-settings"

# The setting on ``User`` that turns each kind of email on or off.
KIND_SETTINGS: dict[str, str] = {
    NotificationKind.MATERIAL_CHANGE: "notify_material_changes",
    NotificationKind.FLAGGED_ACCESS: "notify_flagged_access",
    NotificationKind.MONTHLY_DIGEST: "monthly_digest",
}
SETTING_NAMES = tuple(KIND_SETTINGS.values())


class TokenError(Exception):
    """A settings link that is not ours, was altered, or is too old."""

    def __init__(self, *, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class SettingsLinks:
    """What a notification email carries: the settings page's address and its one-click headers."""

    settings_url: str
    headers: dict[str, str]


def settings_token(user: User) -> str:
    """A signed token naming this consumer (and only them); it expires after ``NOTIFICATION_LINK_MAX_AGE``."""
    return signing.dumps({"u": user.pk}, salt=SALT)


def settings_token_user(token: str) -> User:
    """The active consumer a settings token names; ``TokenError`` when it is altered, expired or theirs no more."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.NOTIFICATION_LINK_MAX_AGE)
    except signing.SignatureExpired as error:
        raise TokenError(expired=True) from error
    except signing.BadSignature as error:
        raise TokenError(expired=False) from error
    user_id = payload.get("u") if isinstance(payload, dict) else None
    user = User.objects.filter(pk=user_id, is_active=True).first() if isinstance(user_id, int) else None
    if user is None:
        raise TokenError(expired=False)
    return user


def settings_links(user: User, kind: NotificationKind) -> SettingsLinks:
    """The settings link for an email of ``kind`` to ``user``, with the RFC 8058 headers that turn ``kind`` off."""
    token = settings_token(user)
    unsubscribe_url = settings.SITE_URL + reverse("notification_unsubscribe", args=[token, kind.value])
    return SettingsLinks(
        settings_url=settings.SITE_URL + reverse("notification_settings", args=[token]),
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
