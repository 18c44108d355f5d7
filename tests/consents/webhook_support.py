"""Helpers for the webhook tests: a real local HTTP receiver and the test database's URL for a worker."""

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

from standardwebhooks import Webhook


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes
    received_at: float

    def verify(self, secret: str) -> dict:
        return Webhook(secret).verify(self.body, self.headers)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[ReceivedWebhook] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.default: tuple[int, dict[str, str]] = (200, {})
        self.delay = 0.0
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    receiver.requests.append(ReceivedWebhook(dict(self.headers.items()), body, time.time()))
                    status, headers = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.changed.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def respond(self, *responses: int | tuple[int, dict[str, str]]) -> None:
        """Answer the next requests with these statuses (optionally with headers), then the default."""
        for response in responses:
            self.script.append(response if isinstance(response, tuple) else (response, {}))

    def wait_for(self, count: int, timeout: float = 30) -> list[ReceivedWebhook]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def database_url_for_worker() -> str:
    """A DATABASE_URL for the test database, so that a worker process sees what the test wrote."""
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{conf['NAME']}"
    auth = quote(conf.get("USER") or "", safe="")
    if conf.get("PASSWORD"):
        auth += ":" + quote(conf["PASSWORD"], safe="")
    host = conf.get("HOST") or "localhost"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(conf['NAME'], safe='')}"
