"""allauth customisations for the portal, in the one place allauth expects them."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sites.shortcuts import get_current_site
from django.core.exceptions import BadRequest, ImproperlyConfigured
from django.forms import BaseForm
from django.http import HttpRequest
from django.utils import translation

from portal import emails
from portal.models import User
from portal.services import user_language_record


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        # With TRUSTED_PROXY_COUNT set, an X-Forwarded-For shorter than the proxy chain did not come
        # through our proxies; allauth calls that a configuration error (a 500). It is a bad request.
        try:
            return super().get_client_ip(request)
        except ImproperlyConfigured as error:
            raise BadRequest("X-Forwarded-For does not match the trusted proxies") from error

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's emails take the portal's one path (``portal.emails``), with allauth's context.

        They go out during the visitor's request, in the language the page is shown in, and a
        refusing mail server raises ``EmailError`` as for every other email.
        """
        request = allauth_context.request
        emails.send_mail(
            template_prefix,
            to=email,
            context={"request": request, "email": email, "current_site": get_current_site(request), **context},
            language=translation.get_language(),
            subject_prefix=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX,
            request=request,
        )

    def save_user(
        self, request: HttpRequest, user: AbstractBaseUser, form: BaseForm, commit: bool = True
    ) -> AbstractBaseUser:
        """A new account starts with the language its owner signed up in (their emails use it)."""
        if isinstance(user, User):
            user.language = translation.get_supported_language_variant(translation.get_language())
        return super().save_user(request, user, form, commit=commit)

    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        """Logging in remembers the language the consumer is using the site in, for their emails."""
        super().login(request, user)
        if isinstance(user, User):
            user_language_record(user=user, language=translation.get_language())
