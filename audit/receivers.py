"""Security events from allauth become entries in the consumer's audit trail.

allauth announces these only through signals, so this is the one place signals are used: each
receiver records the fact and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import get_user_model
from django.dispatch import receiver

from audit.actions import AuditAction
from audit.services import Actor, event_record

if TYPE_CHECKING:
    from portal.models import User


def _record(user: Any, action: AuditAction, **data: Any) -> None:
    if isinstance(user, get_user_model()) and user.pk:
        event_record(actor=Actor.for_user(user), subject=user, action=action, data=data)


@receiver(account_signals.user_logged_in)
def on_logged_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_LOGGED_IN)


@receiver(account_signals.user_signed_up)
def on_signed_up(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_SIGNED_UP)


@receiver(account_signals.password_changed)
def on_password_changed(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_PASSWORD_CHANGED)


@receiver(account_signals.password_set)
def on_password_set(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_PASSWORD_SET)


@receiver(account_signals.password_reset)
def on_password_reset(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_PASSWORD_RESET)


@receiver(account_signals.email_confirmed)
def on_email_confirmed(sender: Any, request: Any, email_address: Any, **kwargs: Any) -> None:
    _record(email_address.user, AuditAction.SECURITY_EMAIL_CONFIRMED)


@receiver(account_signals.email_added)
def on_email_added(sender: Any, request: Any, user: User, email_address: Any, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_EMAIL_ADDED)


@receiver(account_signals.email_removed)
def on_email_removed(sender: Any, request: Any, user: User, email_address: Any, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_EMAIL_REMOVED)


@receiver(account_signals.email_changed)
def on_email_changed(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_EMAIL_CHANGED)


@receiver(mfa_signals.authenticator_added)
def on_mfa_added(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_MFA_ADDED, type=authenticator.type)


@receiver(mfa_signals.authenticator_removed)
def on_mfa_removed(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_MFA_REMOVED, type=authenticator.type)


@receiver(mfa_signals.authenticator_reset)
def on_mfa_reset(sender: Any, request: Any, user: User, authenticator: Any, **kwargs: Any) -> None:
    _record(user, AuditAction.SECURITY_MFA_RESET, type=authenticator.type)
