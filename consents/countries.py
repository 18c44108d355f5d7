"""Countries' names in the consumer's language, from the Unicode CLDR data that Babel ships."""

from babel import Locale, UnknownLocaleError
from django.utils import translation


def country_name(code: str) -> str:
    """The full name of an ISO 3166-1 alpha-2 country in the active language ("DE" → "Germany", "德国").

    An unknown code is returned as it is, so a typo in a partner's record still shows something true.
    """
    language = translation.get_language() or "en"
    try:
        locale = Locale.parse(translation.to_locale(language))
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse("en")
    return locale.territories.get(code.upper(), code)
