import pytest
from django.urls import reverse

from audit.access import STAFF_PARTNER_SLUG
from audit.models import AuditEvent
from audit.services import Actor
from consents.models import Consent, ConsentStatus, Partner, Purpose, PurposeVersion, Sharing
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import secret_fingerprint
from tests.factories import (
    DataCategoryFactory,
    PartnerFactory,
    PurposeFactory,
    SharingFactory,
    StaffFactory,
    publish_form_texts,
    staff_reason_state,
)

# The publish form's terms as the offers purpose has them (the browser submits them prefilled).
TERMS = {"legal_basis": "consent", "default_duration_type": "persistent"}


@pytest.fixture
def staff_client(staff_client, mfa_staff, consumer):
    """The admin asks why before showing a consumer's records: a support request."""
    staff_reason_state(mfa_staff, consumer)
    return staff_client


@pytest.fixture
def offers(db):
    return PurposeFactory(
        slug="offers",
        name="Personalised offers",
        notice="We suggest products that fit how you spend.",
        notice__categories=[DataCategoryFactory(slug="transactions", name="Transaction history")],
    )


@pytest.fixture
def granted(consumer, offers):
    return consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))


@pytest.fixture
def partner(db):
    return PartnerFactory(slug="brightside", name="Brightside Ads", kind="advertiser", country="US")


def _admin_pages(consent, partner) -> list[str]:
    purpose = consent.purpose
    receipt = consent.receipts.get()
    sharing = SharingFactory(partner=partner, purpose=purpose)
    category = purpose.current_version.data_categories.get()
    return [
        reverse("admin:consents_datacategory_changelist"),
        reverse("admin:consents_datacategory_change", args=[category.pk]),
        reverse("admin:consents_purpose_changelist"),
        reverse("admin:consents_purpose_add"),
        reverse("admin:consents_purpose_change", args=[purpose.pk]),
        reverse("admin:consents_purpose_history", args=[purpose.pk]),
        reverse("admin:consents_purpose_publish", args=[purpose.pk]),
        reverse("admin:consents_partner_changelist"),
        reverse("admin:consents_partner_change", args=[partner.pk]),
        reverse("admin:consents_sharing_changelist"),
        reverse("admin:consents_sharing_change", args=[sharing.pk]),
        reverse("admin:consents_consent_changelist"),
        reverse("admin:consents_consent_change", args=[consent.pk]),
        reverse("admin:consents_consent_history", args=[consent.pk]),
        reverse("admin:consents_consentreceipt_changelist"),
        reverse("admin:consents_consentreceipt_change", args=[receipt.pk]),
    ]


def test_consent_admin_pages_load_for_staff_with_mfa(staff_client, granted, partner):
    for url in _admin_pages(granted, partner):
        response = staff_client.get(url)
        assert response.status_code == 200, url


def test_consumers_cannot_reach_consent_admin(consumer_client, granted, partner):
    for url in _admin_pages(granted, partner):
        response = consumer_client.get(url)
        assert response.status_code in {302, 403}, url
        assert b"Personalised offers" not in response.content


def test_staff_without_mfa_cannot_reach_consent_admin(client, granted, partner):
    client.force_login(StaffFactory(email="nomfa@example.com"))
    for url in _admin_pages(granted, partner):
        response = client.get(url)
        assert response.status_code == 302, url
        assert reverse("admin:login") in response.url or "login" in response.url


def test_anonymous_visitors_cannot_publish(client, offers):
    response = client.post(reverse("admin:consents_purpose_publish", args=[offers.pk]), {"description": "x"})
    assert response.status_code == 302
    assert offers.versions.count() == 1


def test_consents_cannot_be_added_changed_or_deleted(staff_client, granted):
    change_url = reverse("admin:consents_consent_change", args=[granted.pk])
    page = staff_client.get(change_url)
    assert b'name="_save"' not in page.content
    assert staff_client.get(reverse("admin:consents_consent_add")).status_code == 403
    assert staff_client.get(reverse("admin:consents_consent_delete", args=[granted.pk])).status_code == 403

    response = staff_client.post(change_url, {"status": "revoked"})

    assert response.status_code == 403
    granted.refresh_from_db()
    assert granted.status == ConsentStatus.GRANTED
    assert granted.history.count() == 1


def test_receipts_and_audit_trail_of_a_consent_cannot_be_deleted(staff_client, granted):
    receipt = granted.receipts.get()
    response = staff_client.post(reverse("admin:consents_consentreceipt_delete", args=[receipt.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert granted.receipts.count() == 1


def test_consent_history_page_lists_every_change(staff_client, granted, consumer, offers):
    consent_revoke(user=consumer, purpose=offers, actor=Actor.consumer(consumer))

    response = staff_client.get(reverse("admin:consents_consent_history", args=[granted.pk]))

    assert response.status_code == 200
    content = " ".join(response.content.decode().split())
    assert "2 entries" in content
    assert "granted &nbsp;&rarr;&nbsp;&nbsp;revoked" in content


def test_publish_form_starts_from_the_current_notice(staff_client, offers, granted):
    response = staff_client.get(reverse("admin:consents_purpose_publish", args=[offers.pk]))

    assert response.status_code == 200
    assert response.context["form"].initial["description"] == "We suggest products that fit how you spend."
    assert b"1 consumer has a running consent" in response.content


def test_publishing_a_material_version_asks_consumers_again(staff_client, mfa_staff, offers, granted):
    balances = DataCategoryFactory(slug="balances", name="Account balances")
    transactions = offers.current_version.data_categories.get()

    response = staff_client.post(
        reverse("admin:consents_purpose_publish", args=[offers.pk]),
        {
            "description": "We suggest products that fit how you spend and what you hold.",
            "retention": "Two years after your last activity",
            "data_categories": [transactions.pk, balances.pk],
            **TERMS,
            **publish_form_texts(offers.current_version),
            **publish_form_texts(offers.current_version),
            "material": "on",
            "change_summary": "We now also look at your account balances.",
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("admin:consents_purpose_change", args=[offers.pk])
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        "Version 2 of the notice for “Personalised offers” is now published. 1 consumer is asked to decide again."
    ]
    offers.refresh_from_db()
    version = offers.current_version
    assert version.number == 2
    assert version.material
    assert version.change_summary == "We now also look at your account balances."
    assert set(version.data_categories.values_list("slug", flat=True)) == {"transactions", "balances"}
    granted.refresh_from_db()
    assert granted.status == ConsentStatus.RECONSENT_REQUIRED
    event = AuditEvent.objects.get(action="purpose.version_published", data__version=2)
    assert (event.actor_kind, event.actor_id, event.actor_label) == ("staff", str(mfa_staff.pk), mfa_staff.email)


def test_publishing_a_non_material_version_keeps_consents(staff_client, offers, granted):
    transactions = offers.current_version.data_categories.get()

    response = staff_client.post(
        reverse("admin:consents_purpose_publish", args=[offers.pk]),
        {
            "description": "We suggest products that suit the way you spend.",
            "retention": "Two years after your last activity",
            "data_categories": [transactions.pk],
            **TERMS,
            **publish_form_texts(offers.current_version),
            **publish_form_texts(offers.current_version),
            "change_summary": "Clearer wording.",
        },
        follow=True,
    )

    (message,) = response.context["messages"]
    assert "Consents given to earlier versions stay valid." in str(message)
    granted.refresh_from_db()
    assert granted.status == ConsentStatus.GRANTED
    assert PurposeVersion.objects.filter(purpose=offers).count() == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({}, "This is the same as the current notice."),
        ({"description": ""}, "This field is required."),
        ({"change_summary": ""}, "This field is required."),
        ({"data_categories": []}, "This field is required."),
    ],
)
def test_publish_form_refuses_bad_input_and_publishes_nothing(staff_client, offers, granted, change, error):
    transactions = offers.current_version.data_categories.get()
    data = {
        "description": "We suggest products that fit how you spend.",
        "retention": "Two years after your last activity",
        "data_categories": [transactions.pk],
        **TERMS,
        **publish_form_texts(offers.current_version),
        "material": "on",
        "change_summary": "Nothing really",
    } | change

    response = staff_client.post(reverse("admin:consents_purpose_publish", args=[offers.pk]), data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert offers.versions.count() == 1
    granted.refresh_from_db()
    assert granted.status == ConsentStatus.GRANTED


def test_publish_action_opens_the_form_for_one_purpose(staff_client, offers):
    other = PurposeFactory(slug="analytics")
    url = reverse("admin:consents_purpose_changelist")

    one = staff_client.post(url, {"action": "publish_new_version", "_selected_action": [offers.pk]})
    two = staff_client.post(url, {"action": "publish_new_version", "_selected_action": [offers.pk, other.pk]})

    assert one.status_code == 302
    assert one.url == reverse("admin:consents_purpose_publish", args=[offers.pk])
    assert two.status_code == 302
    assert two.url == url


def test_change_page_offers_publish_and_lists_versions_read_only(staff_client, offers):
    response = staff_client.get(reverse("admin:consents_purpose_change", args=[offers.pk]))
    content = response.content.decode()

    assert reverse("admin:consents_purpose_publish", args=[offers.pk]) in content
    assert "We suggest products that fit how you spend." in content
    assert 'name="versions-0-description"' not in content


def test_adding_a_purpose_leads_to_publishing_its_first_notice(staff_client):
    response = staff_client.post(
        reverse("admin:consents_purpose_add"),
        {
            "name": "Product analytics",
            "slug": "product-analytics",
            "category": "analytics",
            "legal_basis": "consent",
            "default_duration_type": "persistent",
            "position": 4,
            "is_active": "on",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
        },
    )

    purpose = Purpose.objects.get(slug="product-analytics")
    assert response.status_code == 302
    assert response.url == reverse("admin:consents_purpose_publish", args=[purpose.pk])
    assert purpose.current_version is None


def test_partner_list_never_shows_signing_secrets(staff_client, partner):
    SharingFactory(partner=partner)
    response = staff_client.get(reverse("admin:consents_partner_changelist"))
    content = response.content.decode()

    assert "Brightside Ads" in content
    assert partner.webhook_secret not in content
    assert "whsec_" not in content


def test_rotating_a_webhook_secret_keeps_the_old_one_and_is_audited(staff_client, mfa_staff, partner):
    old_secret = partner.webhook_secret

    response = staff_client.post(
        reverse("admin:consents_partner_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [partner.pk]},
        follow=True,
    )

    partner.refresh_from_db()
    assert partner.webhook_secret != old_secret
    assert partner.webhook_secret.startswith("whsec_")
    assert partner.webhook_secret_previous == old_secret
    (message,) = response.context["messages"]
    assert "A new signing secret was issued for 1 partner." in str(message)
    event = AuditEvent.objects.get(action="partner.webhook_secret_rotated")
    assert (event.actor_kind, event.actor_label) == ("staff", mfa_staff.email)
    assert event.target_id == str(partner.pk)
    assert event.data == {
        "partner": "brightside",
        "fingerprint": secret_fingerprint(partner.webhook_secret),
        "previous_fingerprint": secret_fingerprint(old_secret),
        "previous_expires_at": partner.webhook_secret_previous_expires_at.isoformat(),
    }
    assert old_secret not in str(event.data)
    assert partner.webhook_secret not in str(event.data)


def test_partner_secret_cannot_be_set_through_the_form(staff_client, partner):
    old_secret = partner.webhook_secret
    url = reverse("admin:consents_partner_change", args=[partner.pk])

    staff_client.post(
        url,
        {
            "name": "Brightside Ads",
            "slug": "brightside",
            "kind": "advertiser",
            "country": "US",
            "status": "active",
            "webhook_secret": "whsec_chosen_by_attacker",
        },
    )

    partner.refresh_from_db()
    assert partner.webhook_secret == old_secret


def test_sharing_admin_filters_by_partner_and_purpose(staff_client, partner, offers):
    SharingFactory(partner=partner, purpose=offers)
    SharingFactory(partner=PartnerFactory(slug="mailloop", name="MailLoop"), purpose=PurposeFactory(slug="emails"))
    url = reverse("admin:consents_sharing_changelist")

    by_partner = staff_client.get(url, {"partner__id__exact": partner.pk})
    by_purpose = staff_client.get(url, {"purpose__id__exact": offers.pk})

    assert [s.partner.name for s in by_partner.context["cl"].result_list] == ["Brightside Ads"]
    assert [s.purpose.slug for s in by_purpose.context["cl"].result_list] == ["offers"]


def test_sharing_must_stay_within_the_purposes_notice(staff_client, partner, offers):
    secret = DataCategoryFactory(slug="health", name="Health-related purchases", sensitive=True)
    transactions = offers.current_version.data_categories.get()
    url = reverse("admin:consents_sharing_add")

    refused = staff_client.post(
        url, {"partner": partner.pk, "purpose": offers.pk, "data_categories": [transactions.pk, secret.pk]}
    )
    accepted = staff_client.post(
        url, {"partner": partner.pk, "purpose": offers.pk, "data_categories": [transactions.pk], "is_active": "on"}
    )

    assert refused.status_code == 200
    assert "does not mention: Health-related purchases" in refused.content.decode()
    assert accepted.status_code == 302
    sharing = Sharing.objects.get(partner=partner)
    assert list(sharing.data_categories.all()) == [transactions]


def test_purposes_partners_and_categories_cannot_be_deleted(staff_client, offers, partner):
    category = offers.current_version.data_categories.get()
    assert staff_client.get(reverse("admin:consents_purpose_delete", args=[offers.pk])).status_code == 403
    assert staff_client.get(reverse("admin:consents_partner_delete", args=[partner.pk])).status_code == 403
    assert staff_client.get(reverse("admin:consents_datacategory_delete", args=[category.pk])).status_code == 403


def test_consent_list_filters_by_status(staff_client, granted, other_consumer, offers):
    consent_revoke(user=other_consumer, purpose=offers, actor=Actor.consumer(other_consumer))
    response = staff_client.get(reverse("admin:consents_consent_changelist"), {"status__exact": "revoked"})

    assert [c.user.email for c in response.context["cl"].result_list] == ["other@example.com"]
    assert Consent.objects.count() == 2
    # Only the staff recipient that consents' migration 0005 creates.
    assert Partner.objects.exclude(slug=STAFF_PARTNER_SLUG).count() == 0
