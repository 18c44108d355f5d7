"""The interactive API docs, served from our own static files under our Content Security Policy."""

from drf_spectacular.views import SpectacularSwaggerSplitView


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI (drf-spectacular-sidecar) with its init script as a separate file, nothing inline."""

    template_name = "consents/api_docs.html"
