from audit import admin_access  # noqa: F401  (registers the access-event admin)
