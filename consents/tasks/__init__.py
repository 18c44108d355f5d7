"""Celery tasks of the consent domain, one module per area (``portal.celery`` names them for discovery)."""
