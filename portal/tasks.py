from celery import shared_task
from django.core.management import call_command


@shared_task(name="portal.tasks.sessions_clear_expired")
def sessions_clear_expired() -> None:
    """Drop expired sessions so signed-out and timed-out sessions leave nothing behind."""
    call_command("clearsessions")
