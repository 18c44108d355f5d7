"""The demo catalogue: data categories, purposes with their notices, and the partners receiving data.

A bank's consent set-up in miniature, with the texts a consumer reads before deciding.
"""

from dataclasses import dataclass

from audit.services import Actor
from consents.models import DataCategory, Partner, Purpose, Sharing
from consents.services.notices import purpose_version_publish
from portal.demo import catalogue_zh_hans as zh
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


# partner slug → what it does with data it already received once a consumer withdraws.
PARTNER_RETENTION = {
    "northwind-fraud-ops": "Fraud cases stay six years after the transaction, as anti-money-laundering law requires; "
    "everything else is deleted within 30 days.",
    "mailloop": "Deletes your contact details from its mailing systems within 30 days; delivery logs go after 90 days.",
    "atlas-product-insights": "Deletes the events linked to you within 30 days; only totals that name nobody remain.",
    "brightside-ads": "Stops targeting you at once and deletes your advertising profile within 90 days.",
    "crestline-data-exchange": "Keeps what it already bought for up to three years under its own policy, unless you "
    "ask it to delete it.",
    "meridian-research-labs": "Removes you from new studies at once; published results stay, without your name.",
    "harbor-payments": "Keeps card payment records five years, as card-scheme rules and the law require.",
    "clearview-credit-bureau": "Keeps the record of our credit search on your file for 12 months, as credit reference "
    "rules require.",
}


def data_categories(slugs: tuple[str, ...]) -> list[DataCategory]:
    """The data categories with these slugs."""
    return list(DataCategory.objects.filter(slug__in=slugs))


def partner_ensure(recipient: Recipient) -> Partner:
    """The partner and what it receives for each purpose, each created if missing."""
    partner, _created = Partner.objects.get_or_create(
        slug=recipient.slug,
        defaults={
            "name": recipient.name,
            "kind": recipient.kind,
            "country": recipient.country,
            "policy_url": f"https://{recipient.slug}.example/privacy",
            "retention": PARTNER_RETENTION[recipient.slug],
            "translations": zh.partner_translations(recipient.slug, PARTNER_RETENTION[recipient.slug]),
        },
    )
    # Demo databases seeded before partners had a retention rule get it now.
    if not partner.retention:
        partner.retention = PARTNER_RETENTION[recipient.slug]
        partner.translations = zh.partner_translations(recipient.slug, partner.retention)
        partner.save(update_fields=["retention", "translations"])
    for purpose_slug, category_slugs in recipient.receives.items():
        sharing, created = Sharing.objects.get_or_create(
            partner=partner, purpose=Purpose.objects.get(slug=purpose_slug)
        )
        if created:
            sharing.data_categories.set(data_categories(category_slugs))
    return partner


def catalogue_ensure(*, staff: User) -> None:
    """Data categories, purposes with their first published notice, partners and what each receives."""
    for category in CATEGORIES:
        translations = zh.category_translations(category.slug, category.name, category.description)
        row, _created = DataCategory.objects.get_or_create(
            slug=category.slug,
            defaults={
                "name": category.name,
                "description": category.description,
                "sensitive": category.sensitive,
                "translations": translations,
            },
        )
        # Demo databases seeded before categories had translations get them now.
        if zh.LANGUAGE not in row.translations:
            row.translations = translations
            row.save(update_fields=["translations"])
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
                data_categories=data_categories(notice.data),
                material=False,
                change_summary="First version.",
                actor=Actor.staff(staff),
                translations=zh.notice_translations(notice.purpose),
            )
    for recipient in PARTNERS:
        partner_ensure(recipient)
