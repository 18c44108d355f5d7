from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Jurisdiction(models.TextChoices):
    GDPR = "gdpr", _("European Union / UK (GDPR)")
    CCPA = "ccpa", _("California (CCPA/CPRA)")
    OTHER = "other", _("Other")


class UserManager(DjangoUserManager["User"]):
    """Users are identified by their email address; there is no username."""

    def _create_user_with_email(self, email: str, password: str | None, **extra: Any) -> "User":
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user_with_email(email, password, **extra)

    def create_superuser(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user_with_email(email, password, **extra)


class User(AbstractUser):
    """A consumer or a staff member. The verified email address is the login."""

    username = None  # type: ignore[assignment]
    email = models.EmailField(_("email address"), unique=True)
    jurisdiction = models.CharField(
        _("privacy law"),
        max_length=8,
        choices=Jurisdiction.choices,
        default=Jurisdiction.GDPR,
        help_text=_("Decides the legal deadlines that apply to your privacy requests."),
    )
    # The consumer's own settings: times are shown in their zone and emails are written in their
    # language. Empty until known (taken from the browser at signup or first visit, or chosen on
    # the profile); the site defaults apply until then.
    language = models.CharField(_("language"), max_length=16, choices=settings.LANGUAGES, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    notify_material_changes = models.BooleanField(
        _("email me when a notice changes and needs my decision"), default=True
    )
    notify_flagged_access = models.BooleanField(
        _("email me when a partner accesses my data without my consent"), default=True
    )
    monthly_digest = models.BooleanField(_("send me a monthly summary of who accessed my data"), default=False)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email
