"""Every write of the privacy-request app: ``requests`` (the life of a request), ``export``, ``deletion``."""
