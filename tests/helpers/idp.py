"""A small OAuth2 identity provider on loopback for the tests: nothing contacts Microsoft or Google.

Endpoints (form-encoded POST, JSON answers, as RFC 6749, 7662 and 8628 have them):
  /token       grant_type client_credentials (a client's own account), refresh_token (rotated:
               each use gives a new refresh token and kills the old one) and the device code grant
  /device      device authorization: device_code, user_code, verification_uri
  /approve     what a person does in the browser: user_code + username (the tests post it)
  /authorize   (GET) the authorization endpoint of the authorization code grant with PKCE (RFC 7636)
               and a loopback redirect (RFC 8252): the person `browser_user` has signed in, and is
               sent back (302) to redirect_uri with a code and the state; the code is then
               exchanged once at /token with the right code_verifier and redirect_uri
  /introspect  token -> {"active": ..., "username": ...}: what Dovecot's oauth2 passdb and the
               SMTP sink ask
Knobs for the tests: `browser_user` (who signs in at /authorize; empty: the person declines),
`authorizations` (each /authorize request's parameters), `access_lifetime`, `revoke(username)`
(every refresh token of that account refused from now on), `expire_access_tokens()` (the server
forgets them early), `hold_introspection()` (the next introspection waits until `release()`), and
`issued` (every token string and authorization code handed out, so
that a test can look for them in logs and outputs).

Plain Python, no pytest; `stop()` (or `with`) ends the server thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

from tests.helpers.servers import HOST

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # a Google service account's (RFC 7523)


@dataclass
class _Device:
    client_id: str
    user_code: str
    username: str | None = None  # set by /approve
    used: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str


@dataclass
class IdentityProvider:
    """`clients`: client_id -> secret ("" for a public client); `app_accounts`: client_id -> the
    account a client_credentials token of that client may act as."""

    clients: dict[str, str]
    app_accounts: dict[str, str] = field(default_factory=dict)
    service_accounts: dict[str, str] = field(default_factory=dict)  # client_email -> public key PEM
    ca: trustme.CA | None = None  # given: the same provider also on https (`https_url`), as msal needs
    access_lifetime: int = 3600
    issued: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)  # grant types served, in order
    introspections: int = 0
    scopes: list[str] = field(default_factory=list)  # the scope of each token and device request
    slow_down: int = 0  # answer this many device polls with slow_down (polled too often)
    browser_user: str = ""  # who signs in at /authorize
    authorizations: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._access: dict[str, tuple[str, float]] = {}  # token -> (username, expires at)
        self._refresh: dict[str, str] = {}  # live refresh token -> username
        self._devices: dict[str, _Device] = {}
        self._codes: dict[str, _Code] = {}  # authorization code -> what it was issued for
        self._gate = threading.Event()
        self._gate.set()
        self.holding = threading.Event()  # set while an introspection waits at the gate
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = idp._route(self.path, form, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - OpenID discovery, which msal reads first
                parts = urlsplit(self.path)
                if parts.path.rsplit("/", 1)[-1] == "authorize":
                    status, location = idp._authorize({k: v[-1] for k, v in parse_qs(parts.query).items()})
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                tenant = self.path.split("/")[1]
                base = f"{idp.https_url}/{tenant}"
                data = json.dumps({
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "device_authorization_endpoint": f"{base}/device",
                }).encode()  # fmt: skip
                self.send_response(
                    200 if self.path.endswith("/v2.0/.well-known/openid-configuration") else 404
                )
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self._servers = [ThreadingHTTPServer((HOST, 0), Handler)]
        self.port = self._servers[0].server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self.https_url = ""
        if self.ca is not None:
            tls = ThreadingHTTPServer((HOST, 0), Handler)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(HOST).configure_cert(context)
            tls.socket = context.wrap_socket(tls.socket, server_side=True)
            self._servers.append(tls)
            self.https_url = f"https://{HOST}:{tls.server_address[1]}"
        self._threads = []
        for server in self._servers:
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- the tests' knobs ------------------------------------------------------------------

    def stop(self) -> None:
        self._gate.set()
        for server, thread in zip(self._servers, self._threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(5)

    def __enter__(self) -> IdentityProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def revoke(self, username: str) -> None:
        with self._lock:
            self._refresh = {t: u for t, u in self._refresh.items() if u != username}
            self._access = {t: v for t, v in self._access.items() if v[0] != username}

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def hold_introspection(self) -> None:
        self.holding.clear()  # the provider lives for the module: an earlier test's hold is over
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def refresh_token_is_live(self, token: str) -> bool:
        with self._lock:
            return token in self._refresh

    def approve(self, user_code: str, username: str) -> bool:
        with self._lock:
            for device in self._devices.values():
                if device.user_code == user_code:
                    device.username = username
                    return True
        return False

    # -- the endpoints ---------------------------------------------------------------------

    def _route(self, path: str, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        path = "/" + path.rsplit("/", 1)[-1]  # /TENANT/token, as msal has it, is /token
        if "scope" in form:
            self.scopes.append(form["scope"])
        if path == "/introspect":
            return 200, self.introspect(form.get("token", ""))
        if path == "/approve":
            ok = self.approve(form.get("user_code", ""), form.get("username", ""))
            return (200, {"approved": True}) if ok else (400, {"error": "invalid_request"})
        if path == "/token" and form.get("grant_type") == JWT_GRANT:
            return self._service_account_token(form.get("assertion", ""))
        client_id, secret = _client_of(form, authorization)
        if client_id not in self.clients or (self.clients[client_id] and secret != self.clients[client_id]):
            return 401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
        if path == "/device":
            return 200, self._start_device(client_id)
        if path == "/token":
            return self._token(client_id, form)
        return 404, {"error": "not_found"}

    def introspect(self, token: str) -> dict:
        if not self._gate.is_set():  # held by the test: say so, and wait
            self.holding.set()
            self._gate.wait(30)
        with self._lock:
            self.introspections += 1
            found = self._access.get(token)
        if found is None or found[1] < time.time():
            return {"active": False}
        return {"active": True, "username": found[0], "exp": int(found[1])}

    def _authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The person at the browser signs in as `browser_user`: 302 back to the loopback
        redirect_uri with a code and the state. A request that is not one a native app may make
        (unknown client, a redirect off loopback, no S256 challenge) gets 400 and no redirect."""
        self.authorizations.append(dict(query))
        if "scope" in query:
            self.scopes.append(query["scope"])
        redirect = query.get("redirect_uri", "")
        target = urlsplit(redirect)
        if (
            query.get("client_id") not in self.clients
            or query.get("response_type") != "code"
            or target.scheme != "http"
            or target.hostname != HOST
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            return 400, ""
        answer = {"state": query.get("state", "")} if "state" in query else {}
        if not self.browser_user:
            answer["error"] = "access_denied"
        else:
            code = "ac-" + secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = _Code(
                    query["client_id"], redirect, query["code_challenge"], self.browser_user
                )
            self.issued.append(code)
            answer["code"] = code
        return 302, f"{redirect}?{urlencode(answer)}"

    def _start_device(self, client_id: str) -> dict:
        device_code = secrets.token_urlsafe(24)
        user_code = f"{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}"
        with self._lock:
            self._devices[device_code] = _Device(client_id, user_code)
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{self.url}/device-login",
            "expires_in": 600,
            "interval": 1,
        }

    def _token(self, client_id: str, form: dict[str, str]) -> tuple[int, dict]:
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant)
            if grant == "client_credentials" and client_id in self.app_accounts:
                return 200, self._issue(self.app_accounts[client_id], refresh=False)
            if grant == "refresh_token":
                username = self._refresh.pop(form.get("refresh_token", ""), None)  # rotation
                if username is None:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "refresh token revoked or used",
                    }
                return 200, self._issue(username, refresh=True)
            if grant == "authorization_code":
                return self._exchange_code(client_id, form)
            if grant == DEVICE_GRANT:
                device = self._devices.get(form.get("device_code", ""))
                if device is None or device.used or device.client_id != client_id:
                    return 400, {"error": "expired_token"}
                if self.slow_down > 0:
                    self.slow_down -= 1
                    return 400, {"error": "slow_down"}
                if device.username is None:
                    return 400, {"error": "authorization_pending"}
                device.used = True
                return 200, self._issue(device.username, refresh=True)
        return 400, {"error": "unsupported_grant_type"}

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> tuple[int, dict]:
        """RFC 6749 4.1.3 with RFC 7636: once, by the client it was issued to, with the same
        redirect_uri, and with the verifier whose S256 hash is the challenge."""
        code = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            code is None
            or code.client_id != client_id
            or code.redirect_uri != form.get("redirect_uri")
            or code.challenge != challenge
        ):
            return 400, {"error": "invalid_grant", "error_description": "code unknown, used or not yours"}
        return 200, self._issue(code.username, refresh=True)

    def _service_account_token(self, assertion: str) -> tuple[int, dict]:
        """Google's service account grant: a JWT signed with the account's key, naming the
        mailbox user (`sub`) it acts as and the scope; the signature is checked."""
        import jwt  # PyJWT, with cryptography: what verifies RS256 here

        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            # The audience is Google's token endpoint whatever token_uri says: not ours to check.
            key = self.service_accounts[issuer]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], options={"verify_aud": False})
        except (KeyError, jwt.PyJWTError) as exc:
            return 400, {"error": "invalid_grant", "error_description": type(exc).__name__}
        with self._lock:
            self.grants.append(JWT_GRANT + " " + claims.get("scope", ""))
            return 200, self._issue(claims["sub"], refresh=False)

    def _issue(self, username: str, *, refresh: bool) -> dict:
        access = "at-" + secrets.token_urlsafe(24)
        self._access[access] = (username, time.time() + self.access_lifetime)
        answer = {"access_token": access, "token_type": "Bearer", "expires_in": self.access_lifetime}
        self.issued.append(access)
        if refresh:
            token = "rt-" + secrets.token_urlsafe(24)
            self._refresh[token] = username
            self.issued.append(token)
            answer["refresh_token"] = token
        return answer


def _client_of(form: dict[str, str], authorization: str) -> tuple[str, str]:
    if authorization.startswith("Basic "):
        client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")
