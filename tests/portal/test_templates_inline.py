"""Templates carry no inline styles: the Content Security Policy allows styles from the site only.

An inline ``<style>`` or ``style=""`` is silently dropped by the browser (and logged in its
console), which is how the operations dashboard once lost its chart sizes without any test failing.
"""

from pathlib import Path

from django.conf import settings

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def test_no_template_has_an_inline_style():
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in sorted(TEMPLATES.rglob("*.html"))
        if "<style" in (text := path.read_text()) or ' style="' in text
    ]
    assert offenders == []


def test_the_csp_allows_no_inline_style():
    assert settings.SECURE_CSP["style-src"] == ["'self'"]
