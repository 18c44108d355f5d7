"""Security events from allauth become entries in the consumer's audit trail.

allauth announces these only through signals, so this is the one place signals are used: each
receiver records the fact and nothing else.
"""

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.dispatch import receiver

from audit.services import Actor, event_record
from portal.models import User


def _record(user: Any, action: str, **data: Any) -> None:
    if isinstance(user, User) and user.pk:
        event_record(actor=Actor.for_user(user), subject=user, action=action, data=data)


@receiver(account_signals.user_logged_in)
def on_logged_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.logged_in")


@receiver(account_signals.user_signed_up)
def on_signed_up(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.signed_up")


@receiver(account_signals.password_changed)
def on_password_changed(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.password_changed")


@receiver(account_signals.password_set)
def on_password_set(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.password_set")


@receiver(account_signals.password_reset)
def on_password_reset(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.password_reset")


@receiver(account_signals.email_confirmed)
def on_email_confirmed(sender: Any, request: Any, email_address: Any, **kwargs: Any) -> None:
    _record(email_address.user, "security.email_confirmed")


@receiver(account_signals.email_added)
def on_email_added(sender: Any, request: Any, user: User, email_address: Any, **kwargs: Any) -> None:
    _record(user, "security.email_added")


@receiver(account_signals.email_removed)
def on_email_removed(sender: Any, request: Any, user: User, email_address: Any, **kwargs: Any) -> None:
    _record(user, "security.email_removed")


@receiver(account_signals.email_changed)
def on_email_changed(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, "security.email_changed")


@receiver(mfa_signals.authenticator_added)
def on_mfa_added(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, "security.mfa_added", type=authenticator.type)


@receiver(mfa_signals.authenticator_removed)
def on_mfa_removed(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, "security.mfa_removed", type=authenticator.type)


@receiver(mfa_signals.authenticator_reset)
def on_mfa_reset(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, "security.mfa_reset", type=authenticator.type)
