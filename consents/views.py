"""The consumer's consent pages: cards with grant and withdraw, re-consent, receipts, and the public JWKS.

Every form works without JavaScript (post, then redirect back to the card with a message); with
htmx the same forms swap the card in place and announce the outcome in a live region.
"""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.messages.storage.base import Message
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from audit.services import Actor
from audit.signing import SignatureInvalid, document_verify, public_jwks
from consents.errors import DomainError
from consents.forms import ReviewForm, WithdrawForm
from consents.models import Consent, ConsentReceipt
from consents.selectors.consents import (
    ConsentCard,
    consent_card,
    consent_cards,
    gpc_notice,
    gpc_signal_for,
    notice_diff,
)
from consents.selectors.impact import withdrawal_impact
from consents.selectors.receipts import readable_receipt, receipts_for
from consents.services.consents import consent_grant, consent_revoke
from portal.http import AuthenticatedHttpRequest
from portal.replica import replica_view
from portal.timezones import format_date

RECEIPTS_PER_PAGE = 20


class ConsentRequest(AuthenticatedHttpRequest):
    htmx: HtmxDetails


def _card_or_404(request: ConsentRequest, slug: str) -> ConsentCard:
    card = consent_card(request.user, slug)
    if card is None:
        raise Http404(_("There is no such purpose."))
    return card


def _card_url(slug: str) -> str:
    return reverse("consents:list") + f"#purpose-{slug}"


def _card_tag(slug: str) -> str:
    """Marks a message as being about one card: the list shows it inside that card, where the redirect lands."""
    return f"purpose-{slug}"


def _outcome(
    request: ConsentRequest, slug: str, *, message: str = "", error: str = "", consent: Consent | None = None
) -> HttpResponse:
    """After a change (or a refused one): the fresh card for htmx, else a message and back to the card."""
    if not request.htmx:
        if error:
            messages.error(request, error, extra_tags=_card_tag(slug))
        else:
            messages.success(request, message, extra_tags=_card_tag(slug))
        return redirect(_card_url(slug))
    receipt = consent.receipts.order_by("-issued_at").first() if consent is not None else None
    context = {"card": _card_or_404(request, slug), "message": message, "error": error, "receipt": receipt}
    return render(request, "consents/_card_response.html", context | {"focus": True})


@login_required
@require_GET
def consent_list(request: ConsentRequest) -> HttpResponse:
    cards = consent_cards(request.user)
    # Without JavaScript the page reloads at the changed card's anchor, below the page's message area:
    # messages about a card are shown inside it, so the outcome is in view where the consumer lands.
    shown = {_card_tag(card.purpose.slug) for card in cards}
    page_messages: list[Message] = []
    card_notes: list[Message] = []
    for message in messages.get_messages(request):
        (card_notes if message.extra_tags in shown else page_messages).append(message)
    return render(
        request,
        "consents/list.html",
        {
            "messages": page_messages,
            "card_notes": card_notes,
            "consentable": [c for c in cards if not c.purpose.is_essential],
            "essential": [c for c in cards if c.purpose.is_essential],
            "reconsent": [c for c in cards if c.needs_review],
            "gpc": gpc_notice(gpc_signal_for(request.user), [c.purpose for c in cards]),
        },
    )


@login_required
@require_GET
@vary_on_headers("HX-Request")
def consent_card_view(request: ConsentRequest, slug: str) -> HttpResponse:
    """One card on its own (htmx, e.g. after cancelling a withdrawal); the list at its anchor otherwise."""
    card = _card_or_404(request, slug)
    if not request.htmx:
        return redirect(_card_url(slug))
    return render(request, "consents/_card.html", {"card": card, "focus": True})


@login_required
@require_POST
def consent_grant_view(request: ConsentRequest, slug: str) -> HttpResponse:
    card = _card_or_404(request, slug)
    try:
        consent = consent_grant(user=request.user, purpose=card.purpose, actor=Actor.consumer(request.user))
    except DomainError as error:
        return _outcome(request, slug, error=error.message)
    message = _("You gave your consent to “%(purpose)s”.") % {"purpose": card.purpose.l10n.name}
    if consent.expires_at:
        message += " " + _("It ends on %(date)s unless you renew it.") % {"date": format_date(consent.expires_at)}
    return _outcome(request, slug, message=message, consent=consent)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def consent_withdraw(request: ConsentRequest, slug: str) -> HttpResponse:
    """GET: what withdrawing stops and whom we tell, with an optional reason. POST: withdraw."""
    card = _card_or_404(request, slug)
    form = WithdrawForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            consent = consent_revoke(
                user=request.user,
                purpose=card.purpose,
                actor=Actor.consumer(request.user),
                note=form.cleaned_data["note"],
            )
        except DomainError as error:
            return _outcome(request, slug, error=error.message)
        if card.needs_review:
            message = _("You declined the new notice for “%(purpose)s”, so your consent is withdrawn.")
        else:
            message = _("You withdrew your consent to “%(purpose)s”.")
        message %= {"purpose": card.purpose.l10n.name}
        if card.sharings:
            partners = ", ".join(sharing.partner.name for sharing in card.sharings)
            message += " " + _("We are telling these partners to stop: %(partners)s.") % {"partners": partners}
        return _outcome(request, slug, message=message, consent=consent)
    if request.method == "GET" and not card.can_withdraw:
        return _outcome(
            request,
            slug,
            error=_("There is no consent to withdraw for “%(purpose)s”.") % {"purpose": card.purpose.l10n.name},
        )
    context = {"card": card, "form": form, "impact": withdrawal_impact(card)}
    if request.htmx:
        return render(request, "consents/_withdraw_preview.html", context | {"focus": True, "level": 3})
    return render(request, "consents/withdraw.html", context | {"level": 2}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def consent_review(request: ConsentRequest, slug: str) -> HttpResponse:
    """The diff between the notice the consumer agreed to and the new one, with accept / decline."""
    card = _card_or_404(request, slug)
    if not card.needs_review or card.consent is None:
        messages.info(
            request,
            _("“%(purpose)s” has nothing for you to review.") % {"purpose": card.purpose.l10n.name},
            extra_tags=_card_tag(slug),
        )
        return redirect(_card_url(slug))
    form = ReviewForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["decision"] == ReviewForm.DECLINE:
            # Declining withdraws consent, so it shows the same preview and asks the same confirmation.
            return redirect("consents:withdraw", slug)
        try:
            consent_grant(user=request.user, purpose=card.purpose, actor=Actor.consumer(request.user))
        except DomainError as error:
            messages.error(request, error.message, extra_tags=_card_tag(slug))
        else:
            messages.success(
                request,
                _("You accepted the new notice for “%(purpose)s”.") % {"purpose": card.purpose.l10n.name},
                extra_tags=_card_tag(slug),
            )
        return redirect(_card_url(slug))
    old = card.consent.version
    diff = notice_diff(old, card.version, agreed_at=card.consent.granted_at or old.published_at)
    context = {"card": card, "diff": diff, "form": form}
    return render(request, "consents/review.html", context, status=400 if form.errors else 200)


def _receipt_or_404(request: ConsentRequest, receipt_id: Any) -> ConsentReceipt:
    return get_object_or_404(
        ConsentReceipt.objects.select_related("consent__purpose", "app_grant__purpose"),
        pk=receipt_id,
        user=request.user,
    )


@login_required
@require_GET
@replica_view
def receipt_list(request: ConsentRequest) -> HttpResponse:
    page = Paginator(receipts_for(request.user), RECEIPTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "consents/receipts.html", {"page": page})


@login_required
@require_GET
@replica_view
def receipt_detail(request: ConsentRequest, receipt_id: Any) -> HttpResponse:
    receipt = _receipt_or_404(request, receipt_id)
    try:
        verified = document_verify(receipt.jws) == receipt.payload
    except SignatureInvalid:
        verified = False
    context = {
        "receipt": receipt,
        "readable": readable_receipt(receipt),
        "verified": verified,
        "payload_json": json.dumps(receipt.payload, indent=2, ensure_ascii=False, sort_keys=True),
    }
    return render(request, "consents/receipt.html", context)


def _attachment(content: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
@replica_view
def receipt_download(request: ConsentRequest, receipt_id: Any) -> HttpResponse:
    """The signed receipt exactly as issued: a compact JWS to verify against /.well-known/jwks.json."""
    receipt = _receipt_or_404(request, receipt_id)
    return _attachment(receipt.jws, "application/jose", f"consent-receipt-{receipt.pk}.jws")


@login_required
@require_GET
@replica_view
def receipt_download_json(request: ConsentRequest, receipt_id: Any) -> HttpResponse:
    """The receipt's payload as readable JSON (the signed original is the .jws download)."""
    receipt = _receipt_or_404(request, receipt_id)
    body = json.dumps(receipt.payload, indent=2, ensure_ascii=False, sort_keys=True)
    return _attachment(body, "application/json; charset=utf-8", f"consent-receipt-{receipt.pk}.json")


@require_GET
@cache_control(public=True, max_age=3600)
def jwks(request: HttpRequest) -> JsonResponse:
    """The public key set that verifies consent receipts; anyone may fetch it, from anywhere."""
    response = JsonResponse(public_jwks())
    response["Access-Control-Allow-Origin"] = "*"
    return response
