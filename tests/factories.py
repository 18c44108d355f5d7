from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from portal.models import User

PASSWORD = "correct horse battery staple"


def notice_translations(
    *, name: str = "", description: str = "", retention: str = "", change_summary: str = ""
) -> dict[str, dict[str, str]]:
    """A notice's texts in the shipped languages beside English, as ``purpose_version_publish`` takes them."""
    text = {"name": name, "description": description, "retention": retention, "change_summary": change_summary}
    translated = {field: f"中文 {value}" if value else "" for field, value in text.items()}
    return {"zh-hans": translated | {"name": translated["name"] or "用途"}}


def publish_form_texts(version, change_summary: str = "中文 摘要") -> dict[str, str]:
    """The admin publish form's name and per-language fields, as in ``version`` (with a new change summary)."""
    zh = version.translations["zh-hans"]
    return {
        "name": version.purpose.name,
        "name_zh_hans": zh["name"],
        "description_zh_hans": zh["description"],
        "retention_zh_hans": zh["retention"],
        "change_summary_zh_hans": change_summary,
    }


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create: bool, extracted: bool | None, **kwargs) -> None:
        if create and extracted is not False:
            EmailAddress.objects.get_or_create(
                user=self, email=self.email, defaults={"verified": True, "primary": True}
            )
        if create:
            self.save()


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True


class DataCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "consents.DataCategory"
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"category-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    translations = factory.LazyAttribute(lambda o: {"en": {"name": o.name}, "zh-hans": {"name": f"中文 {o.name}"}})


class PurposeFactory(factory.django.DjangoModelFactory):
    """A purpose with a published first notice (``current_version``) covering one data category."""

    class Meta:
        model = "consents.Purpose"
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"purpose-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    legal_basis = "consent"

    @factory.post_generation
    def notice(self, create: bool, extracted: str | None, **kwargs) -> None:
        if not create or self.current_version_id:
            return
        from audit.services import Actor
        from consents.services.notices import purpose_version_publish

        description = extracted or f"We use your data for {self.name.lower()}."
        retention = kwargs.get("retention", "Two years after your last activity")
        purpose_version_publish(
            purpose=self,
            description=description,
            retention=retention,
            data_categories=kwargs.get("categories") or [DataCategoryFactory()],
            material=False,
            change_summary="First version",
            actor=Actor.system("tests"),
            translations=notice_translations(
                name=self.name, description=description, retention=retention, change_summary="First version"
            ),
        )
        self.refresh_from_db()


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "consents.Partner"
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    kind = "service_provider"
    country = "DE"


class SharingFactory(factory.django.DjangoModelFactory):
    """The partner receives the purpose's current data categories unless ``categories`` says otherwise."""

    class Meta:
        model = "consents.Sharing"
        skip_postgeneration_save = True

    partner = factory.SubFactory(PartnerFactory)
    purpose = factory.SubFactory(PurposeFactory)

    @factory.post_generation
    def categories(self, create: bool, extracted: list | None, **kwargs) -> None:
        if create:
            self.data_categories.set(extracted or self.purpose.current_version.data_categories.all())


def outbox_event_create(*, partner, user, purpose=None, event_type="consent.revoked", created_at=None, **data):
    """An outbox event in the shape the webhook service writes (the feed serves its payload as is)."""
    import uuid

    from django.utils import timezone

    from consents.models import OutboxEvent
    from consents.services.partners import partner_subject_ensure

    subject = partner_subject_ensure(partner=partner, user=user)
    event_id = uuid.uuid4()
    created_at = created_at or timezone.now()
    if event_type == "subject.erasure_requested":
        payload_data = {"subject_id": subject.subject_id, "request_id": "req_1", "due_at": "2030-01-31T00:00:00Z"}
    else:
        payload_data = {
            "subject_id": subject.subject_id,
            "purpose": purpose.slug if purpose else "marketing",
            "status": event_type.removeprefix("consent."),
            "granted": event_type == "consent.granted",
            "notice_version": 1,
            "granted_at": "2026-01-01T00:00:00Z",
            "expires_at": None,
            "revoked_at": None if event_type == "consent.granted" else created_at.isoformat(),
            "reason": None if event_type == "consent.granted" else "user_action",
        }
    payload_data.update(data)
    return OutboxEvent.objects.create(
        id=event_id,
        partner=partner,
        subject=subject,
        event_type=event_type,
        payload={"id": str(event_id), "type": event_type, "timestamp": created_at.isoformat(), "data": payload_data},
        created_at=created_at,
        status="no_endpoint",
    )


class PrivacyRequestFactory(factory.django.DjangoModelFactory):
    """A request as received, due 45 days later; a deletion with its 7-day grace period. Each for a new consumer."""

    class Meta:
        model = "privacy_requests.PrivacyRequest"

    user = factory.SubFactory(UserFactory)
    kind = "export"
    jurisdiction = "ccpa"
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyAttribute(lambda o: o.created_at)
    due_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=45))
    grace_ends_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=7) if o.kind == "deletion" else None)


def connected_app_create_for_tests(*, partner=None, purpose=None, categories=None, **kwargs):
    """A registered connected app (and its client secret) allowed the purpose and all its notice's categories."""
    from audit.services import Actor
    from consents.services.apps import connected_app_create

    purpose = purpose or PurposeFactory()
    partner = partner or PartnerFactory()
    return connected_app_create(
        partner=partner,
        name=kwargs.pop("name", "Budget helper"),
        redirect_uris=kwargs.pop("redirect_uris", ["https://app.example.com/callback"]),
        purposes=[purpose],
        data_categories=categories or list(purpose.current_version.data_categories.all()),
        max_duration_days=kwargs.pop("max_duration_days", 90),
        max_lookback_days=kwargs.pop("max_lookback_days", 365),
        actor=Actor.system("tests"),
    )


def _oauth_application():
    from oauth2_provider.models import Application

    return Application.objects.create(
        name="connected app",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.com/callback",
        skip_authorization=False,
    )


class ConnectedAppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "consents.ConnectedApp"

    partner = factory.SubFactory(PartnerFactory)
    application = factory.LazyFunction(_oauth_application)
    name = factory.Sequence(lambda n: f"Budget App {n}")
    redirect_uris = "https://app.example.com/callback"


class AppGrantFactory(factory.django.DjangoModelFactory):
    """An active grant of the purpose's current categories (or ``categories=[...]``), until withdrawn."""

    class Meta:
        model = "consents.AppGrant"
        skip_postgeneration_save = True

    app = factory.SubFactory(ConnectedAppFactory)
    user = factory.SubFactory(UserFactory)
    purpose = factory.SubFactory(PurposeFactory)
    version = factory.LazyAttribute(lambda o: o.purpose.current_version)
    status = "granted"
    duration_type = "persistent"
    changed_by = "consumer"
    granted_at = factory.LazyFunction(timezone.now)
    connected_at = factory.SelfAttribute("granted_at")  # the app exchanged its code (None: not yet)
    authorization_details = factory.LazyAttribute(
        lambda o: [{"type": "privacy_portal_data_access", "purpose": o.purpose.slug}]
    )

    @factory.post_generation
    def categories(self, create: bool, extracted: list | None, **kwargs) -> None:
        if create:
            self.data_categories.set(extracted or self.purpose.current_version.data_categories.all())


def app_grant_tokens(grant, *, with_code: bool = False) -> str:
    """An access token (returned in clear) and a refresh token issued to the grant's app, linked to the grant."""
    import secrets

    from oauth2_provider.models import AccessToken, Grant, RefreshToken

    from consents.models import AppGrantToken

    raw = secrets.token_urlsafe(32)
    application = grant.app.application
    access = AccessToken.objects.create(
        user=grant.user, application=application, token=raw, expires=timezone.now() + timedelta(hours=1), scope=""
    )
    refresh = RefreshToken.objects.create(
        user=grant.user, application=application, token=secrets.token_urlsafe(32), access_token=access
    )
    AppGrantToken.objects.create(grant=grant, access_token=access)
    AppGrantToken.objects.create(grant=grant, refresh_token=refresh)
    if with_code:
        code = Grant.objects.create(
            user=grant.user,
            application=application,
            code=secrets.token_urlsafe(16),
            expires=timezone.now() + timedelta(minutes=1),
            redirect_uri="https://app.example.com/callback",
            code_challenge="x" * 43,
            code_challenge_method="S256",
        )
        AppGrantToken.objects.create(grant=grant, code=code)
    return raw


def staff_reason_state(staff: User, *consumers: User, reference: str = "#4821") -> None:
    """Let ``staff`` open these consumers' records in the admin: a support request each."""
    from audit.staff_access import staff_access_reason_state

    for consumer in consumers:
        staff_access_reason_state(staff=staff, consumer=consumer, code="support_request", reference=reference)
