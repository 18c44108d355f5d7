"""The one way the portal sends email, in the manner of allauth's adapter (``render_mail`` / ``send_mail``).

An email is a template prefix: ``<prefix>_subject.txt`` (one line), ``<prefix>_message.txt`` and,
when it exists, ``<prefix>_message.html``, sent as an HTML alternative. It is rendered in the
recipient's language, and a mail server that refuses it raises ``EmailError``, the one error
callers handle. allauth's own emails come through here too (``portal/adapter.py``).
"""

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import tzinfo
from functools import partial
from smtplib import SMTPException
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.http import HttpRequest
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone, translation

from portal.models import User


class EmailError(Exception):
    """An email could not be handed to the mail server."""


def render_mail(
    template_prefix: str,
    context: Mapping[str, Any],
    to: Sequence[str],
    *,
    subject_prefix: str = "",
    request: HttpRequest | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMultiAlternatives:
    """The email ``template_prefix`` to ``to``, rendered in the active language, with extra ``headers``.

    Every template sees ``site_url``; ``request``, when given, runs the context processors.
    """
    context = {"site_url": settings.SITE_URL, **context}
    subject = render_to_string(f"{template_prefix}_subject.txt", context, request)
    text = render_to_string(f"{template_prefix}_message.txt", context, request)
    message = EmailMultiAlternatives(
        subject=subject_prefix + " ".join(subject.split()), body=text.strip(), to=to, headers=dict(headers or {})
    )
    try:
        html = render_to_string(f"{template_prefix}_message.html", context, request)
    except TemplateDoesNotExist:
        return message
    message.attach_alternative(html.strip(), "text/html")
    return message


def send_mail(
    template_prefix: str,
    *,
    to: str | Sequence[str],
    context: Mapping[str, Any],
    language: str | None = None,
    time_zone: tzinfo | None = None,
    subject_prefix: str = "",
    request: HttpRequest | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Render the email ``template_prefix`` in ``language`` and hand it to the mail server.

    ``language`` is the recipient's (the one they used for what the email is about); the site's
    default language when not given. ``time_zone`` is the recipient's (``portal.timezones.user_zone``): the
    times the templates show are in it. ``headers`` are added to the message (``List-Unsubscribe``).
    Raises ``EmailError`` when the mail server cannot be reached or refuses the message.
    """
    recipients = [to] if isinstance(to, str) else list(to)
    zone = timezone.override(time_zone) if time_zone is not None else nullcontext()
    with translation.override(language or settings.LANGUAGE_CODE), zone:
        message = render_mail(
            template_prefix, context, recipients, subject_prefix=subject_prefix, request=request, headers=headers
        )
    try:
        message.send()
    except (SMTPException, OSError) as error:
        raise EmailError(str(error)) from error


def send_mail_on_commit(template_prefix: str, **kwargs: Any) -> None:
    """``send_mail`` once the current transaction commits: a rolled-back change tells nobody.

    A failure to send is logged (``on_commit(robust=True)``) and never undoes the change.
    """
    transaction.on_commit(partial(send_mail, template_prefix, **kwargs), robust=True)


def staff_recipients() -> list[str]:
    """The addresses that staff alerts go to: every active staff member who has one."""
    staff = User.objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk")
    return list(staff.values_list("email", flat=True))
