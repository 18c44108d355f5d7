"""The partner API (Django REST Framework): authentication, scoping, problem details and endpoints."""
