"""Demo data for the running portal, built through the real services. Every function is idempotent.

``manage.py seed_demo`` calls, in order: ``catalogue.catalogue_ensure`` (categories, purposes,
partners), ``partner.demo_partner_ensure`` (one partner wired to the local receiver) and
``history.consumer_consents_ensure`` then ``history.access_history_ensure`` (the demo consumer's
decisions and the accesses reported since). Everything is created only when missing, so a second
run changes nothing and leaves no extra history, receipts or audit events.
"""
