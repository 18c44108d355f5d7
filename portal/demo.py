"""Demo data for the running portal, built through the real services. Every function is idempotent.

``seed_demo`` calls these in order; later areas add their own functions here and a call there.
Everything is created only when missing, so a second run changes nothing and leaves no extra
history, receipts or audit events.
"""

import json
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from audit.access import access_event_record_staff
from audit.models import AccessEvent
from audit.services import Actor
from consents.models import PARTNER_SCOPES, Consent, DataCategory, Partner, PartnerCredential, Purpose, Sharing
from consents.services import (
    consent_grant,
    consent_revoke,
    partner_credential_create,
    partner_subject_ensure,
    purpose_version_publish,
)
from consents.services.access import AccessReport, access_events_ingest
from portal.models import User


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    description: str
    sensitive: bool = False


CATEGORIES = [
    Category("contact-details", "Contact details", "Your name, email address, phone number and postal address."),
    Category(
        "transaction-history",
        "Transaction history",
        "Card and account payments: date, amount, merchant and the kind of shop.",
    ),
    Category("account-balances", "Account balances", "Current and past balances of your accounts and savings."),
    Category("credit-score", "Credit score", "Your score and report from a credit reference agency."),
    Category(
        "device-browsing",
        "Device & browsing behaviour",
        "Your device type and app version, and the pages and screens you use and in which order.",
    ),
    Category(
        "location",
        "Location",
        "Approximate location from your internet address and, if you allow it, your phone's location when you pay.",
    ),
    Category(
        "income-employment",
        "Income & employment",
        "Salary payments into your account and the employer they come from.",
    ),
    Category(
        "health-purchases",
        "Health-related purchases",
        "Payments to pharmacies, clinics, opticians and other health providers, which can reveal your health.",
        sensitive=True,
    ),
    Category(
        "identity-documents",
        "Identity documents",
        "Passport or identity card details and the photo taken when you opened your account.",
        sensitive=True,
    ),
]


@dataclass(frozen=True)
class Notice:
    purpose: str
    name: str
    category: str
    legal_basis: str
    description: str
    retention: str
    data: tuple[str, ...]
    gpc_covered: bool = False
    period_days: int | None = None


NOTICES = [
    Notice(
        "fraud-prevention",
        "Fraud prevention and security",
        "security",
        "legal_obligation",
        "We check every payment and every sign-in for signs of fraud or of someone else using your account — "
        "for example a card used in two countries within an hour, or a sign-in from a new phone followed by a "
        "large transfer. Suspicious activity is held for review and we may call you to confirm it was you. The "
        "law requires us to do this, so it cannot be switched off.",
        "Six years after each transaction, as anti-money-laundering law requires.",
        ("identity-documents", "transaction-history", "device-browsing", "location"),
    ),
    Notice(
        "service-emails",
        "Service messages",
        "service",
        "contract",
        "We send you the messages you need to use your account: statements, security alerts, changes to our "
        "terms and confirmations of what you asked us to do. They are never advertising, and we cannot run your "
        "account without them.",
        "As long as you have an account, and 12 months after you close it.",
        ("contact-details",),
    ),
    Notice(
        "personalised-offers",
        "Personalised offers",
        "marketing",
        "consent",
        "We look at how you spend and save to suggest products that may suit you — a savings account when money "
        "sits unused in your current account, or a travel card when you often pay abroad. Offers appear in the app "
        "and by email. We never sell this analysis. If you say no, you still see our general offers.",
        "Your spending profile is deleted 12 months after you withdraw your consent or close your account.",
        ("transaction-history", "account-balances", "contact-details"),
    ),
    Notice(
        "product-analytics",
        "Product analytics",
        "analytics",
        "consent",
        "We measure how you use our app and website — which screens you open, where you get stuck, what crashes — "
        "to fix problems and improve the design. The data is linked to a random identifier rather than your name, "
        "and our analytics provider processes it only on our instructions.",
        "Raw events are deleted after 14 months; only statistics that cannot identify you are kept.",
        ("device-browsing",),
    ),
    Notice(
        "credit-risk-assessment",
        "Credit-risk assessment",
        "credit",
        "consent",
        "When you ask for an overdraft or a loan, we look at your income, balances and regular payments to decide "
        "whether we can lend to you and how much. A person reviews any decision you disagree with.",
        "Five years after your application, as lending rules require.",
        ("income-employment", "account-balances", "transaction-history"),
    ),
    Notice(
        "advertising-partners",
        "Sharing with advertising partners",
        "advertising",
        "consent",
        "We share your contact details and a summary of your interests with selected advertising partners, so "
        "they can show you ads for their products on their own sites and on social media. Under Californian law "
        "this is “selling” or “sharing” personal information, and a Global Privacy Control signal from your "
        "browser switches it off.",
        "Partners must delete the data 90 days after receiving it, or as soon as you withdraw, whichever is first.",
        ("contact-details", "device-browsing", "location"),
        gpc_covered=True,
    ),
    Notice(
        "research-with-affiliates",
        "Research with affiliated companies",
        "research",
        "consent",
        "Meridian Research Labs, part of our group, studies spending patterns to design better financial "
        "products — for example budgeting tools for people whose income changes from month to month. It receives "
        "your transactions without your name or account number for the period you agree to, and may not try to "
        "find out who you are. This includes health-related purchases, which are sensitive: say no if you are "
        "not comfortable with that.",
        "Deleted when your consent ends, at the latest after 180 days. Published results never identify anyone.",
        ("transaction-history", "health-purchases"),
        period_days=180,
    ),
]

# The credit-risk notice changes materially once the credit bureau joins: the demo consumer, who
# agreed to the first version, is asked to decide again.
CREDIT_NOTICE_V2 = Notice(
    "credit-risk-assessment",
    "Credit-risk assessment",
    "credit",
    "consent",
    "When you ask for an overdraft or a loan, we look at your income, balances and regular payments to decide "
    "whether we can lend to you and how much. We now also ask Clearview Credit Bureau for your credit score and "
    "report, and check your identity documents against its records. Clearview notes that we searched, and other "
    "lenders can see that search for 12 months. A person reviews any decision you disagree with.",
    "Five years after your application, as lending rules require.",
    ("income-employment", "account-balances", "transaction-history", "credit-score", "identity-documents"),
)
CREDIT_CHANGE_SUMMARY = (
    "We now also get your credit score from Clearview Credit Bureau and check your identity documents with it. "
    "Other lenders can see the search for 12 months."
)


@dataclass(frozen=True)
class Recipient:
    slug: str
    name: str
    kind: str
    country: str
    receives: dict[str, tuple[str, ...]]  # purpose slug → data category slugs


PARTNERS = [
    Recipient(
        "northwind-fraud-ops",
        "Northwind Fraud Operations",
        "internal",
        "GB",
        {
            "fraud-prevention": ("identity-documents", "transaction-history", "device-browsing", "location"),
            "credit-risk-assessment": ("income-employment", "account-balances", "transaction-history"),
        },
    ),
    Recipient("mailloop", "MailLoop", "service_provider", "IE", {"service-emails": ("contact-details",)}),
    Recipient(
        "atlas-product-insights",
        "Atlas Product Insights",
        "service_provider",
        "DE",
        {"product-analytics": ("device-browsing",)},
    ),
    Recipient(
        "brightside-ads",
        "Brightside Ads",
        "advertiser",
        "US",
        {"advertising-partners": ("contact-details", "device-browsing", "location")},
    ),
    Recipient(
        "crestline-data-exchange",
        "Crestline Data Exchange",
        "data_broker",
        "US",
        {"advertising-partners": ("contact-details", "device-browsing")},
    ),
    Recipient(
        "meridian-research-labs",
        "Meridian Research Labs",
        "affiliate",
        "NL",
        {
            "research-with-affiliates": ("transaction-history", "health-purchases"),
            "personalised-offers": ("transaction-history", "account-balances"),
        },
    ),
    Recipient(
        "harbor-payments",
        "Harbor Payments",
        "acquirer",
        "FR",
        {"fraud-prevention": ("transaction-history", "device-browsing", "location")},
    ),
]

# Joins with the second credit-risk notice, which is the first to mention the credit score.
CREDIT_BUREAU = Recipient(
    "clearview-credit-bureau",
    "Clearview Credit Bureau",
    "data_broker",
    "GB",
    {"credit-risk-assessment": ("credit-score", "identity-documents", "income-employment")},
)


def _categories(slugs: tuple[str, ...]) -> list[DataCategory]:
    return list(DataCategory.objects.filter(slug__in=slugs))


def _partner_ensure(recipient: Recipient) -> Partner:
    partner, _created = Partner.objects.get_or_create(
        slug=recipient.slug,
        defaults={
            "name": recipient.name,
            "kind": recipient.kind,
            "country": recipient.country,
            "policy_url": f"https://{recipient.slug}.example/privacy",
        },
    )
    for purpose_slug, category_slugs in recipient.receives.items():
        sharing, created = Sharing.objects.get_or_create(
            partner=partner, purpose=Purpose.objects.get(slug=purpose_slug)
        )
        if created:
            sharing.data_categories.set(_categories(category_slugs))
    return partner


def catalogue_ensure(*, staff: User) -> None:
    """Data categories, purposes with their first published notice, partners and what each receives."""
    for category in CATEGORIES:
        DataCategory.objects.get_or_create(
            slug=category.slug,
            defaults={"name": category.name, "description": category.description, "sensitive": category.sensitive},
        )
    for position, notice in enumerate(NOTICES, start=1):
        purpose, _created = Purpose.objects.get_or_create(
            slug=notice.purpose,
            defaults={
                "name": notice.name,
                "category": notice.category,
                "legal_basis": notice.legal_basis,
                "gpc_covered": notice.gpc_covered,
                "default_duration_type": "time_bound" if notice.period_days else "persistent",
                "default_period_days": notice.period_days,
                "position": position,
            },
        )
        if purpose.current_version_id is None:
            purpose_version_publish(
                purpose=purpose,
                description=notice.description,
                retention=notice.retention,
                data_categories=_categories(notice.data),
                material=False,
                change_summary="First version.",
                actor=Actor.staff(staff),
            )
    for recipient in PARTNERS:
        _partner_ensure(recipient)


def _decided(consumer: User, slug: str) -> bool:
    return Consent.objects.filter(user=consumer, purpose__slug=slug).exists()


def consumer_consents_ensure(*, consumer: User, staff: User) -> None:
    """The demo consumer's decisions: two running consents, one withdrawn, one time-bound, one to renew.

    The last one comes from a material second notice for credit-risk assessment, published by
    staff after the consumer agreed to the first.
    """
    me = Actor.consumer(consumer)
    for slug in ("personalised-offers", "product-analytics", "research-with-affiliates"):
        if not _decided(consumer, slug):
            consent_grant(user=consumer, purpose=Purpose.objects.get(slug=slug), actor=me)
    if not _decided(consumer, "advertising-partners"):
        advertising = Purpose.objects.get(slug="advertising-partners")
        consent_grant(user=consumer, purpose=advertising, actor=me)
        consent_revoke(
            user=consumer, purpose=advertising, actor=me, note="I don't want my data passed on to advertisers."
        )
    credit = Purpose.objects.get(slug="credit-risk-assessment")
    if not _decided(consumer, credit.slug):
        consent_grant(user=consumer, purpose=credit, actor=me)
    if credit.versions.count() == 1:
        purpose_version_publish(
            purpose=credit,
            description=CREDIT_NOTICE_V2.description,
            retention=CREDIT_NOTICE_V2.retention,
            data_categories=_categories(CREDIT_NOTICE_V2.data),
            material=True,
            change_summary=CREDIT_CHANGE_SUMMARY,
            actor=Actor.staff(staff),
        )
    _partner_ensure(CREDIT_BUREAU)


# What each demo partner does with the consumer's data: (partner, purpose, categories, action, detail).
ACCESS_PATTERNS = [
    (
        "harbor-payments",
        "fraud-prevention",
        ("transaction-history", "device-browsing"),
        "read",
        "Card payment screened",
    ),
    ("mailloop", "service-emails", ("contact-details",), "read", "Statement notification sent"),
    ("atlas-product-insights", "product-analytics", ("device-browsing",), "read", "App usage aggregated"),
    ("meridian-research-labs", "personalised-offers", ("transaction-history",), "read", "Offer model scored"),
]


def access_history_ensure(*, consumer: User, staff: User) -> None:
    """A few hundred reported accesses over the last 90 days, two of them flagged, and one staff look.

    Accesses for essential purposes span the whole period; accesses relying on consent start when
    the demo consumer gave it (the moment the demo was seeded), so they are covered by it.
    """
    if AccessEvent.objects.filter(user=consumer).exists():
        return
    now = timezone.now()
    rng = random.Random(2026)  # noqa: S311 (demo data, not security)
    for slug, purpose, categories, action, detail in ACCESS_PATTERNS:
        partner = Partner.objects.get(slug=slug)
        subject = partner_subject_ensure(partner=partner, user=consumer)
        essential = Purpose.objects.get(slug=purpose).is_essential
        count = 120 if essential else 15
        reports = [
            AccessReport(
                event_id=f"demo-{slug}-{n}",
                subject_id=subject.subject_id,
                purpose=purpose,
                categories=categories,
                accessed_at=now - timedelta(minutes=rng.randint(1, 90 * 24 * 60)) if essential else now,
                action=action,
                detail=detail,
            )
            for n in range(count)
        ]
        access_events_ingest(partner=partner, reports=reports)
    flagged = [
        # After the consumer withdrew consent to advertising, an advertiser still used their data.
        ("brightside-ads", "advertising-partners", ("device-browsing",), "Audience segment refreshed"),
        # A data broker read location data it never receives.
        ("crestline-data-exchange", "advertising-partners", ("location",), "Location enrichment"),
    ]
    for slug, purpose, categories, detail in flagged:
        partner = Partner.objects.get(slug=slug)
        subject = partner_subject_ensure(partner=partner, user=consumer)
        report = AccessReport(
            event_id=f"demo-{slug}-flagged",
            subject_id=subject.subject_id,
            purpose=purpose,
            categories=categories,
            accessed_at=now,
            action="read",
            detail=detail,
        )
        access_events_ingest(partner=partner, reports=[report])
    access_event_record_staff(staff=staff, consumer=consumer, what="Looked up the account after a phone call")


DEMO_PARTNER = "meridian-research-labs"
DEMO_PARTNER_LISTEN = "127.0.0.1:8001"


def demo_partner_ensure(*, staff: User) -> Path:
    """Make one demo partner a live integration: the local ``demo_partner`` receiver and its credentials.

    Its webhook points at the receiver that ``make run`` starts, and an OAuth client lets it
    acknowledge events. The client secret is stored only in ``var/demo_partner.json`` (development
    only), where the receiver reads it; a lost or revoked credential is replaced.
    """
    path = Path(settings.VAR_DIR) / "demo_partner.json"
    partner = Partner.objects.get(slug=DEMO_PARTNER)
    webhook_url = f"http://{DEMO_PARTNER_LISTEN}/webhooks/privacy-portal"
    if partner.webhook_url != webhook_url or partner.webhook_disabled_at is not None:
        partner.webhook_url = webhook_url
        partner.webhook_disabled_at = None
        partner.save(update_fields=["webhook_url", "webhook_disabled_at"])
    config = json.loads(path.read_text()) if path.exists() else {}
    credential = PartnerCredential.objects.filter(
        partner=partner, application__client_id=config.get("client_id", ""), revoked_at__isnull=True
    ).first()
    if credential is None or config.get("webhook_secret") != partner.webhook_secret:
        if credential is None:
            credential, secret = partner_credential_create(
                partner=partner,
                label="demo receiver",
                scopes=PARTNER_SCOPES,
                actor=Actor.staff(staff),
                created_by=staff,
            )
            config["client_id"], config["client_secret"] = credential.application.client_id, secret
        config |= {
            "webhook_secret": partner.webhook_secret,
            "portal_url": settings.SITE_URL,
            "listen": DEMO_PARTNER_LISTEN,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
    return path
