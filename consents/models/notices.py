"""Data categories, purposes and their versioned notices."""

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from consents.models.translations import TranslatedMixin, Translations

if TYPE_CHECKING:
    pass

TRANSLATIONS_HELP = _("The consumer-facing texts in every language: {language: {field: text}}.")


class DataCategory(TranslatedMixin, models.Model):
    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    # {language: {"name", "description"}}; ``name``/``description`` hold the default language's.
    translations: Translations = models.JSONField(
        _("translations"), default=dict, blank=True, help_text=TRANSLATIONS_HELP
    )  # type: ignore[assignment]
    sensitive = models.BooleanField(
        _("sensitive"), default=False, help_text=_("Special-category or financial data that needs extra care.")
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = _("data category")
        verbose_name_plural = _("data categories")

    def __str__(self) -> str:
        return self.name


class LegalBasis(models.TextChoices):
    CONSENT = "consent", _("Your consent")
    CONTRACT = "contract", _("Needed to provide the service you signed up for")
    LEGAL_OBLIGATION = "legal_obligation", _("Required by law")
    LEGITIMATE_INTEREST = "legitimate_interest", _("Our legitimate interest")


class DurationType(models.TextChoices):
    ONE_TIME = "one_time", _("One time")
    PERSISTENT = "persistent", _("Until you withdraw it")
    TIME_BOUND = "time_bound", _("For a limited period")


class PurposeQuerySet(models.QuerySet["Purpose"]):
    def published(self) -> "PurposeQuerySet":
        return self.filter(is_active=True, current_version__isnull=False)


class Purpose(TranslatedMixin, models.Model):
    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=160)
    category = models.CharField(
        _("purpose category"), max_length=120, blank=True, help_text=_("For example: marketing, security, research.")
    )
    legal_basis = models.CharField(_("legal basis"), max_length=24, choices=LegalBasis.choices)
    gpc_covered = models.BooleanField(
        _("covered by Global Privacy Control"),
        default=False,
        help_text=_("Sale or sharing of data or targeted advertising: a browser's GPC signal opts the consumer out."),
    )
    default_duration_type = models.CharField(
        _("default duration"), max_length=16, choices=DurationType.choices, default=DurationType.PERSISTENT
    )
    default_period_days = models.PositiveIntegerField(
        _("default period (days)"), null=True, blank=True, help_text=_("Only for time-bound consent.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    current_version = models.ForeignKey(
        "PurposeVersion",
        verbose_name=_("current notice"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    # The number of the latest material notice: a consent given to an older one no longer counts,
    # from the moment that notice is published, whether or not its publication run reached it yet.
    material_version_number = models.PositiveIntegerField(_("latest material notice"), default=0, editable=False)
    # The current notice's names, {language: {"name"}}, copied by the publish service so listings
    # that show a purpose need not load its notice.
    translations: Translations = models.JSONField(
        _("translations"), default=dict, blank=True, editable=False, help_text=TRANSLATIONS_HELP
    )  # type: ignore[assignment]

    objects = PurposeQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        constraints = [
            models.CheckConstraint(
                condition=~Q(default_duration_type="time_bound") | Q(default_period_days__gt=0),
                name="purpose_time_bound_has_period",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_essential(self) -> bool:
        """Purposes with a legal basis other than consent are shown but cannot be refused."""
        return self.legal_basis != LegalBasis.CONSENT


class PurposeVersion(TranslatedMixin, models.Model):
    """The notice a consumer saw for a purpose: immutable once published."""

    purpose = models.ForeignKey(Purpose, verbose_name=_("purpose"), on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    description = models.TextField(_("plain-language description"))
    retention = models.CharField(_("retention"), max_length=255, help_text=_("How long the data is kept."))
    data_categories = models.ManyToManyField(DataCategory, verbose_name=_("data categories"), related_name="+")
    material = models.BooleanField(
        _("material change"), default=False, help_text=_("Consumers who agreed to an older version must agree again.")
    )
    change_summary = models.TextField(_("change summary"), blank=True)
    published_at = models.DateTimeField(_("published at"), default=timezone.now)
    # {language: {"name", "description", "retention", "change_summary"}} in every shipped language;
    # the plain columns hold the default language's text.
    translations: Translations = models.JSONField(
        _("translations"), default=dict, blank=True, help_text=TRANSLATIONS_HELP
    )  # type: ignore[assignment]

    history = HistoricalRecords(m2m_fields=[data_categories])

    class Meta:
        ordering = ["purpose", "-number"]
        verbose_name = _("notice version")
        verbose_name_plural = _("notice versions")
        constraints = [
            models.UniqueConstraint(fields=["purpose", "number"], name="purposeversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.number}"
