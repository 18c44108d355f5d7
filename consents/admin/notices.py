"""Data categories, purposes and the publication of new notice versions."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit.admin_mixins import ReadOnlyAdminMixin
from audit.services import Actor
from consents.admin.publication import publication_progress
from consents.models import (
    Consent,
    ConsentStatus,
    DataCategory,
    DurationType,
    LegalBasis,
    PublicationRun,
    Purpose,
    PurposeVersion,
)
from consents.models.translations import Translations, languages, missing_languages
from consents.services.notices import (
    CATEGORY_FIELDS,
    MATERIAL_TERMS,
    NOTICE_FIELDS,
    PurposeTerms,
    notice_untranslated,
    purpose_version_publish,
)
from portal.admin_history import ReadOnlyHistoryAdmin
from portal.http import AuthenticatedHttpRequest


def other_languages() -> list[tuple[str, str]]:
    """The shipped languages beside the default one, with the suffix of their form fields."""
    return [(code, code.replace("-", "_")) for code in languages() if code != settings.LANGUAGE_CODE]


def language_name(code: str) -> str:
    return str(dict(settings.LANGUAGES).get(code, code))


class DataCategoryForm(forms.ModelForm):
    """The category's name and description in the default language (the columns) and in every other one."""

    class Meta:
        model = DataCategory
        fields = ("name", "slug", "description", "sensitive")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.translations or {}
        for code, suffix in other_languages():
            text = stored.get(code) or {}
            self.fields[f"name_{suffix}"] = forms.CharField(
                label=format_lazy(_("Name ({language})"), language=language_name(code)),
                max_length=120,
                initial=text.get("name", ""),
            )
            self.fields[f"description_{suffix}"] = forms.CharField(
                label=format_lazy(_("Description ({language})"), language=language_name(code)),
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                initial=text.get("description", ""),
            )

    def save(self, commit: bool = True) -> DataCategory:
        category = super().save(commit=False)
        translations: Translations = {
            settings.LANGUAGE_CODE: {"name": category.name, "description": category.description}
        }
        for code, suffix in other_languages():
            translations[code] = {
                "name": self.cleaned_data[f"name_{suffix}"].strip(),
                "description": self.cleaned_data[f"description_{suffix}"].strip(),
            }
        category.translations = translations
        if commit:
            category.save()
        return category


@admin.register(DataCategory)
class DataCategoryAdmin(ReadOnlyHistoryAdmin):
    form = DataCategoryForm
    list_display = ("name", "slug", "sensitive", "untranslated")
    list_filter = ("sensitive",)
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}

    def get_form(
        self, request: HttpRequest, obj: DataCategory | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # The per-language fields are added by the form itself, not taken from the model.
        kwargs["fields"] = DataCategoryForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: DataCategory | None = None) -> list[str]:
        fields = ["name", "slug", "description", "sensitive"]
        for _code, suffix in other_languages():
            fields += [f"name_{suffix}", f"description_{suffix}"]
        return fields

    @admin.display(description=_("missing translations"))
    def untranslated(self, obj: DataCategory) -> str:
        return ", ".join(language_name(code) for code in missing_languages(obj.translations or {}, CATEGORY_FIELDS))

    def has_delete_permission(self, request: HttpRequest, obj: DataCategory | None = None) -> bool:
        # Published notices list their categories; removing one would rewrite what consumers saw.
        return False


class PurposeVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PurposeVersion
    fields = (
        "number",
        "published_at",
        "material",
        "publication",
        "change_summary",
        "categories",
        "description",
        "retention",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("published notices (newest first)")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PurposeVersion]:
        return super().get_queryset(request).select_related("publication_run").prefetch_related("data_categories")

    @admin.display(description=_("data categories"))
    def categories(self, obj: PurposeVersion) -> str:
        return ", ".join(c.name for c in obj.data_categories.all())

    @admin.display(description=_("re-consent requests"))
    def publication(self, obj: PurposeVersion) -> str:
        try:
            run = obj.publication_run
        except PublicationRun.DoesNotExist:
            return "—"
        return publication_progress(run)


class PurposeVersionPublishForm(forms.Form):
    """A new notice: its texts in the default language (the plain fields) and in every other language."""

    name = forms.CharField(label=_("Purpose name"), max_length=160)
    description = forms.CharField(
        label=_("Plain-language description"),
        widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
        help_text=_("What the data is used for, in words the consumer understands without a lawyer."),
    )
    retention = forms.CharField(
        label=_("Retention"),
        max_length=255,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text=_("How long the data is kept, and what happens then."),
    )
    data_categories = forms.ModelMultipleChoiceField(
        label=_("Data categories"), queryset=DataCategory.objects.all(), widget=forms.CheckboxSelectMultiple
    )
    material = forms.BooleanField(
        label=_("Material change"),
        required=False,
        help_text=_(
            "Tick this when the change affects what consumers agreed to: more data, new recipients, a new use "
            "or a longer retention. Everyone who agreed to an earlier version is then asked to decide again."
        ),
    )
    legal_basis = forms.ChoiceField(label=_("Legal basis"), choices=LegalBasis.choices)
    gpc_covered = forms.BooleanField(
        label=_("Covered by Global Privacy Control"),
        required=False,
        help_text=_("Sale or sharing of data or targeted advertising: a browser's GPC signal opts the consumer out."),
    )
    default_duration_type = forms.ChoiceField(label=_("Default duration"), choices=DurationType.choices)
    default_period_days = forms.IntegerField(
        label=_("Default period (days)"), min_value=1, required=False, help_text=_("Only for time-bound consent.")
    )
    change_summary = forms.CharField(
        label=_("Change summary"),
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        help_text=_("Shown to consumers next to the new notice."),
    )

    def __init__(self, *args: Any, purpose: Purpose, current: PurposeVersion | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.purpose = purpose
        self.current = current
        # Optional as form fields so a missing language is named in one clear error (see clean()).
        for code, suffix in other_languages():
            language = language_name(code)
            self.fields[f"name_{suffix}"] = forms.CharField(
                label=format_lazy(_("Purpose name ({language})"), language=language), max_length=160, required=False
            )
            self.fields[f"description_{suffix}"] = forms.CharField(
                label=format_lazy(_("Plain-language description ({language})"), language=language),
                required=False,
                widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
            )
            self.fields[f"retention_{suffix}"] = forms.CharField(
                label=format_lazy(_("Retention ({language})"), language=language),
                max_length=255,
                required=False,
                widget=forms.TextInput(attrs={"class": "vTextField"}),
            )
            self.fields[f"change_summary_{suffix}"] = forms.CharField(
                label=format_lazy(_("Change summary ({language})"), language=language),
                required=False,
                widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
            )

    @property
    def translations(self) -> Translations:
        """The texts in the languages beside the default one, ``{language: {field: text}}``."""
        data = self.cleaned_data
        return {
            code: {field: (data.get(f"{field}_{suffix}") or "").strip() for field in NOTICE_FIELDS}
            for code, suffix in other_languages()
        }

    @property
    def terms(self) -> PurposeTerms:
        data = self.cleaned_data
        time_bound = data["default_duration_type"] == DurationType.TIME_BOUND
        return PurposeTerms(
            legal_basis=data["legal_basis"],
            gpc_covered=data["gpc_covered"],
            default_duration_type=data["default_duration_type"],
            default_period_days=data["default_period_days"] if time_bound else None,
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        if cleaned["default_duration_type"] == DurationType.TIME_BOUND and not cleaned["default_period_days"]:
            self.add_error("default_period_days", _("A time-bound consent needs a period."))
            return cleaned
        texts = {
            settings.LANGUAGE_CODE: {field: cleaned[field].strip() for field in NOTICE_FIELDS if field != "name"}
            | {"name": cleaned["name"].strip()},
            **self.translations,
        }
        problems = notice_untranslated(texts, cleaned["data_categories"])
        if problems:
            for code, suffix in other_languages():
                for field in ("name", "description", "retention", "change_summary"):
                    if not texts[code][field]:
                        self.add_error(
                            f"{field}_{suffix}",
                            format_lazy(_("Needed in {language} before publishing."), language=language_name(code)),
                        )
            raise forms.ValidationError(problems)
        current = self.current
        if current is None:
            return cleaned
        before = PurposeTerms.of(self.purpose)
        changed = {field for field in MATERIAL_TERMS if getattr(self.terms, field) != getattr(before, field)}
        if changed and not cleaned["material"]:
            raise forms.ValidationError(
                _(
                    "A new legal basis or Global Privacy Control coverage changes what consumers agreed to: "
                    "tick Material change."
                )
            )
        unchanged = (
            all(
                texts[code][field] == (current.translations.get(code) or {}).get(field, "").strip()
                for code in texts
                for field in ("name", "description", "retention")
            )
            and {c.pk for c in cleaned["data_categories"]} == {c.pk for c in current.data_categories.all()}
            and self.terms == before
        )
        if unchanged:
            raise forms.ValidationError(
                _("This is the same as the current notice. Change the text, the retention or the data categories.")
            )
        return cleaned


@admin.register(Purpose)
class PurposeAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "name",
        "slug",
        "legal_basis",
        "gpc_covered",
        "default_duration_type",
        "notice_version",
        "is_active",
        "position",
    )
    list_filter = ("legal_basis", "gpc_covered", "is_active", "default_duration_type")
    list_select_related = ("current_version",)
    search_fields = ("name", "slug", "category")
    fields = (
        "name",
        "slug",
        "category",
        "legal_basis",
        "gpc_covered",
        "default_duration_type",
        "default_period_days",
        "is_active",
        "position",
        "current_version",
    )
    readonly_fields = ("current_version",)
    # What the consumer is told before deciding changes only with a published notice (the publish
    # view): editing the row would change it without an audit event, receipts or partner events.
    notice_bound_fields = ("name", "legal_basis", "gpc_covered", "default_duration_type", "default_period_days")
    inlines = (PurposeVersionInline,)
    actions = ("publish_new_version",)

    @admin.display(description=_("notice"), ordering="current_version__number")
    def notice_version(self, obj: Purpose) -> str:
        return f"v{obj.current_version.number}" if obj.current_version else "—"

    def get_prepopulated_fields(self, request: HttpRequest, obj: Purpose | None = None) -> dict[str, tuple[str, ...]]:
        # The name is read-only once the purpose exists (the history form reads the class
        # attribute, so it stays empty), and the slug follows it only on the add form.
        return {} if obj is not None else {"slug": ("name",)}

    def get_readonly_fields(self, request: HttpRequest, obj: Purpose | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None else fields + self.notice_bound_fields

    def has_delete_permission(self, request: HttpRequest, obj: Purpose | None = None) -> bool:
        # Consents and receipts point at purposes for good; retire a purpose by deactivating it.
        return False

    def get_urls(self) -> list[URLPattern]:
        publish = path(
            "<path:object_id>/publish/",
            self.admin_site.admin_view(self.publish_view),
            name="consents_purpose_publish",
        )
        return [publish, *super().get_urls()]

    def response_add(self, request: HttpRequest, obj: Purpose, post_url_continue: str | None = None) -> HttpResponse:
        if "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(
            request,
            _("The purpose “%(purpose)s” was added. Publish its first notice so consumers can see it.")
            % {"purpose": obj.name},
            messages.SUCCESS,
        )
        return redirect("admin:consents_purpose_publish", obj.pk)

    @admin.action(description=_("Publish new version"), permissions=["change"])
    def publish_new_version(self, request: HttpRequest, queryset: QuerySet[Purpose]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one purpose to publish a new notice for."), messages.WARNING)
            return None
        purpose = queryset.get()
        return redirect("admin:consents_purpose_publish", purpose.pk)

    def publish_view(self, request: AuthenticatedHttpRequest, object_id: str) -> HttpResponse:
        """The intermediate form: the new notice, whether the change is material, and a summary."""
        purpose = self.get_object(request, unquote(object_id))
        if purpose is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, purpose):
            raise PermissionDenied
        current = purpose.current_version
        if request.method == "POST":
            form = PurposeVersionPublishForm(request.POST, purpose=purpose, current=current)
            if form.is_valid():
                return self._publish(request, purpose, form)
        else:
            initial: dict[str, Any] = {
                "legal_basis": purpose.legal_basis,
                "gpc_covered": purpose.gpc_covered,
                "default_duration_type": purpose.default_duration_type,
                "default_period_days": purpose.default_period_days,
            }
            initial["name"] = purpose.name
            if current is not None:
                initial |= {
                    "description": current.description,
                    "retention": current.retention,
                    "data_categories": list(current.data_categories.all()),
                }
                for code, suffix in other_languages():
                    text = current.translations.get(code) or {}
                    initial |= {
                        f"{field}_{suffix}": text.get(field, "") for field in ("name", "description", "retention")
                    }
            form = PurposeVersionPublishForm(initial=initial, purpose=purpose, current=current)
        # AdminForm renders any form in the admin's layout; its stubs only admit model forms.
        adminform = helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}, model_admin=self)  # type: ignore[arg-type]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Publish a new notice for “%(purpose)s”") % {"purpose": purpose.name},
            "opts": self.opts,
            "original": purpose,
            "form": form,
            "adminform": adminform,
            "current": current,
            "granted_count": Consent.objects.filter(purpose=purpose, status=ConsentStatus.GRANTED).count(),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/consents/purpose/publish.html", context)

    def _publish(
        self, request: AuthenticatedHttpRequest, purpose: Purpose, form: PurposeVersionPublishForm
    ) -> HttpResponseRedirect:
        data = form.cleaned_data
        # Everyone with a running consent is on an older version, so a material change asks them all.
        asked = Consent.objects.filter(purpose=purpose, status=ConsentStatus.GRANTED).count()
        version = purpose_version_publish(
            purpose=purpose,
            description=data["description"].strip(),
            retention=data["retention"].strip(),
            data_categories=data["data_categories"],
            material=data["material"],
            change_summary=data["change_summary"].strip(),
            actor=Actor.staff(request.user),
            translations=form.translations,
            terms=form.terms,
            name=data["name"].strip(),
        )
        message = _("Version %(number)s of the notice for “%(purpose)s” is now published.") % {
            "number": version.number,
            "purpose": purpose.name,
        }
        if data["material"] and version.number > 1:
            message += " " + ngettext(
                "%(count)d consumer is asked to decide again.", "%(count)d consumers are asked to decide again.", asked
            ) % {"count": asked}
        elif version.number > 1:
            message += " " + str(_("Consents given to earlier versions stay valid."))
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:consents_purpose_change", args=[purpose.pk]))
