"""The operations dashboard and the partner scorecards (admin, for privacy officers and auditors)."""
