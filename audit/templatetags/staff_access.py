"""The consumer's wording of a staff access in access-log templates."""

from django import template

from audit.access import STAFF_PARTNER_SLUG
from audit.models import AccessEvent
from audit.presenters import staff_access_text

register = template.Library()


@register.filter
def staff_access(event: AccessEvent) -> str:
    """What our staff looked at and why, or "" for a partner's access."""
    if event.partner.slug != STAFF_PARTNER_SLUG:
        return ""
    return staff_access_text(event)
