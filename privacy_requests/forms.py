from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from portal.models import User
from privacy_requests.models import AgentRequestKind

CONFIRMATION_WORD = "DELETE"


class DeletionConfirmForm(forms.Form):
    confirmation = forms.CharField(
        label=_("To confirm, type DELETE or your email address"),
        max_length=254,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_confirmation(self) -> str:
        typed: str = self.cleaned_data["confirmation"]
        # Any case: on a phone the keyboard may capitalise the first letter only, and the intent is the same.
        if typed.casefold() not in {CONFIRMATION_WORD.casefold(), self.user.email.casefold()}:
            raise forms.ValidationError(_("Type the word DELETE, or your email address."), code="mismatch")
        return typed


class ExtendForm(forms.Form):
    months = forms.IntegerField(label=_("Months"), min_value=0, max_value=2, initial=0)
    days = forms.IntegerField(label=_("Days"), min_value=0, max_value=45, initial=0)
    reason = forms.CharField(
        label=_("Reason (sent to the consumer)"), widget=forms.Textarea(attrs={"rows": 4}), max_length=2000
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (sent to the consumer)"), widget=forms.Textarea(attrs={"rows": 4}), max_length=2000
    )


class RecordAcknowledgementForm(forms.Form):
    note = forms.CharField(
        label=_("How did the confirmation arrive?"),
        help_text=_("For example: email from their DPO on 3 March, reference 1234."),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )


# The signed permission: what its first bytes must be for each accepted type (the browser's word is not enough).
DOCUMENT_SIGNATURES = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


class AgentRequestForm(forms.Form):
    kind = forms.TypedChoiceField(
        label=_("What does the consumer ask for?"), choices=AgentRequestKind.choices, widget=forms.RadioSelect
    )
    consumer_email = forms.EmailField(
        label=_("The consumer's email address"), help_text=_("The address they use for their account with us.")
    )
    agent_name = forms.CharField(label=_("Your name"), max_length=200)
    agent_email = forms.EmailField(label=_("Your email address"))
    agent_organisation = forms.CharField(label=_("Your organisation (if any)"), max_length=200, required=False)
    document = forms.FileField(
        label=_("Signed permission from the consumer"),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg"}),
    )
    attest = forms.BooleanField(
        label=_("I confirm the consumer signed this permission for me to make this request for them.")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["document"].help_text = _("A PDF, PNG or JPEG file of at most %(size)s MB.") % {
            "size": settings.AGENT_DOCUMENT_MAX_BYTES // (1024 * 1024)
        }

    def clean_document(self) -> UploadedFile:
        document: UploadedFile = self.cleaned_data["document"]
        if (document.size or 0) > settings.AGENT_DOCUMENT_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is too large: at most %(size)s MB.")
                % {"size": settings.AGENT_DOCUMENT_MAX_BYTES // (1024 * 1024)},
                code="too_large",
            )
        head = document.read(8)
        document.seek(0)
        for content_type, signature in DOCUMENT_SIGNATURES.items():
            if head.startswith(signature):
                document.content_type = content_type
                return document
        raise forms.ValidationError(_("Upload a PDF, PNG or JPEG file."), code="wrong_type")


class AgentVerifyForm(forms.Form):
    note = forms.CharField(
        label=_("How was the agent's power of attorney verified?"),
        help_text=_("For example: notarised power of attorney checked against the consumer's ID, ticket 1234."),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )


class AgentRejectForm(forms.Form):
    note = forms.CharField(
        label=_("Why is the agent's power of attorney not accepted?"),
        help_text=_("For example: the permission is not signed by the consumer, ticket 1234."),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )
