"""The loopback redirect of the installed-app flow (RFC 8252, section 7.3): a one-shot HTTP listener
on 127.0.0.1 (never on another interface: the authorization code must not be offered to the
network) that waits for the browser to come back from the provider with `code` and `state`.

A `state` that is not the one mailbot sent is refused at once: the browser is told, and the sign-in
ends with nothing exchanged and nothing stored (it is either a forged redirect or a stale tab).
Requests that are not the redirect (a browser's `/favicon.ico`) are answered 404 and waited past.

What it leaves to others: building the authorization URL and exchanging the code (`providers`),
storing the tokens (`keeper`).
"""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from mailbot.oauth.providers import Refused

LOOPBACK = "127.0.0.1"
PATH = "/"  # the redirect URI is http://127.0.0.1:PORT/
PAGE_OK = "mailbot is signed in. You can close this window."
PAGE_REFUSED = "mailbot refused this answer ({reason}). Run `mailbot oauth login` again."


class Redirect:
    """`with Redirect(port) as redirect:` listens; `redirect.uri` goes into the authorization
    request; `redirect.wait(state, timeout)` answers the code, or raises `Refused`."""

    def __init__(self, port: int = 0):
        self._answer: dict[str, str] | None = None
        self._done = threading.Event()
        self._server = HTTPServer((LOOPBACK, port), self._handler())
        self.port = self._server.server_address[1]
        self.uri = f"http://{LOOPBACK}:{self.port}{PATH}"
        self._expected = ""

    def __enter__(self) -> Redirect:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.server_close()

    def wait(self, state: str, timeout: float) -> str:
        """Serve requests until the redirect comes (or `timeout` seconds pass); its code."""
        self._expected = state
        self._server.timeout = 1.0  # handle_request returns each second, to look at the clock
        deadline = time.monotonic() + timeout
        while not self._done.is_set():
            if time.monotonic() > deadline:
                raise Refused(f"nobody came back from the browser within {int(timeout // 60)} minutes")
            self._server.handle_request()
        answer = self._answer or {}
        if "error" in answer:
            raise Refused(answer["error"])
        return answer["code"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        redirect = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                if parts.path != PATH or not ({"code", "error", "state"} & set(query)):
                    self._reply(404, "not the sign-in redirect")
                    return
                outcome = redirect._judge(query)
                self._reply(200 if "code" in outcome else 400, _page(outcome))

            def _reply(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # the request line carries the code
                pass

        return Handler

    def _judge(self, query: dict[str, str]) -> dict[str, str]:
        """The redirect's outcome: {"code": ...} or {"error": reason}; the wait ends either way."""
        if not secrets.compare_digest(query.get("state", "").encode(), self._expected.encode()):
            outcome = {"error": "the answer's state is not the one sent (a forged or stale redirect)"}
        elif "error" in query:
            said = query.get("error_description")
            reason = f"{query['error']}: {said}" if said else query["error"]
            outcome = {"error": reason.splitlines()[0][:300]}
        elif not query.get("code"):
            outcome = {"error": "the answer carries no code"}
        else:
            outcome = {"code": query["code"]}
        self._answer = outcome
        self._done.set()
        return outcome


def _page(outcome: dict[str, str]) -> str:
    return PAGE_OK if "code" in outcome else PAGE_REFUSED.format(reason=outcome["error"])
