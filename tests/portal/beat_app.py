"""The portal's Celery app with a one-second schedule of its own, for the two-beat test.

``celery -A tests.portal.beat_app beat`` runs the production scheduler (RedBeat with its lock) under a
key prefix and on a queue that the test names, so nothing else in the test Redis is touched.
"""

import os

from portal.celery import app

app.conf.redbeat_key_prefix = os.environ["BEAT_TEST_PREFIX"]
app.conf.beat_schedule = {
    "beat-probe": {
        "task": "tests.portal.beat_probe",
        "schedule": 1.0,
        "options": {"queue": os.environ["BEAT_TEST_QUEUE"]},
    }
}
