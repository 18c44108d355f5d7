"""Reports for regulators, computed from the data on each request: CCPA metrics and the GDPR Art. 30 record."""
