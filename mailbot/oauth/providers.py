"""The OAuth2 providers, each through its maintained library: `generic` through authlib (any
standards-following provider: a token endpoint, a device authorization endpoint and an
authorization endpoint as URLs; the tests' identity provider), `microsoft` through msal (client
credentials for app-only access, the device code flow for a delegated mailbox) and `google`
through google-auth (a service account with domain-wide delegation) or, for the installed-app flow
(authorization code with PKCE and a loopback redirect, RFC 7636 and 8252), through authlib with
Google's endpoints: Google gives the mail scope to that flow and not to the device flow. Each
answers with a `Grant` or raises `Refused` (the provider said no: a person must act) or
`Unreachable` (try again later); the texts carry the provider's reason, never a token.

What it leaves to others: storing tokens and deciding when to refresh (`keeper`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from mailbot.config_values import OAuthSettings

# The scopes mailbot asks for by default: read and write the mailbox over IMAP, send over SMTP.
MICROSOFT_DELEGATED_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)  # app-only: what the admin granted
GOOGLE_SCOPES = ("https://mail.google.com/",)
GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
# Asked of Google in the authorization request: a refresh token (offline), given again on every
# sign-in (consent), for the account the mailbox URL names.
GOOGLE_AUTH_PARAMS = {"access_type": "offline", "prompt": "consent"}
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}"
TIMEOUT = 30.0
# RFC 8628 answers that mean "not yet": keep polling (slower for slow_down).
PENDING = ("authorization_pending", "slow_down")


class Refused(Exception):
    """The provider refused: invalid_grant, invalid_client, access_denied, expired_token..."""


class SlowDown(Exception):
    """RFC 8628: not signed in yet, and poll five seconds less often from now on."""


class Unreachable(Exception):
    """The provider could not be asked now (network, 5xx)."""


@dataclass(frozen=True)
class Grant:
    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DeviceStart:
    """What the person must do (`verification_uri`, `user_code`), and what mailbot polls with."""

    verification_uri: str
    user_code: str
    interval: float
    expires_in: float
    handle: Any = field(repr=False)  # the device code, or the library's flow object


@dataclass(frozen=True)
class InstalledStart:
    """The installed-app flow's authorization request: `url` for the browser; `state` to check
    the redirect against; `verifier` (PKCE) to prove, when the code is exchanged, that mailbot
    made the request."""

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    verifier: str = field(repr=False)


class Provider(Protocol):
    def app_token(self) -> Grant: ...
    def refresh(self, refresh_token: str) -> Grant: ...
    def start_device(self) -> DeviceStart: ...
    def poll_device(self, start: DeviceStart) -> Grant | None: ...  # None: not signed in yet
    def start_installed(self, redirect_uri: str) -> InstalledStart: ...
    def finish_installed(self, start: InstalledStart, code: str) -> Grant: ...


def provider_for(settings: OAuthSettings, account: str) -> Provider:
    if settings.provider == "microsoft":
        return MicrosoftProvider(settings)
    if settings.provider == "google":
        return GoogleProvider(settings, account)
    return GenericProvider(settings)


def _scopes(settings: OAuthSettings, default: tuple[str, ...]) -> list[str]:
    return settings.scope.split() if settings.scope else list(default)


class GenericProvider:
    """RFC 6749 client credentials, refresh and authorization code (with RFC 7636 PKCE), RFC 8628
    device code, with authlib. `auth_params` go into the installed-app authorization request."""

    def __init__(self, settings: OAuthSettings, *, auth_params: dict[str, str] | None = None):
        self.settings = settings
        self.scope = " ".join(_scopes(settings, ()))
        self.auth_params = auth_params or {}

    def _session(self, redirect_uri: str | None = None) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        secret = self.settings.client_secret or None
        return OAuth2Session(
            self.settings.client_id,
            secret,
            scope=self.scope or None,
            token_endpoint_auth_method="client_secret_post" if secret else "none",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )

    def _token(self, redirect_uri: str | None = None, **kwargs: Any) -> Grant:
        from authlib.integrations.requests_client import OAuthError
        from requests import RequestException

        with self._session(redirect_uri) as session:
            try:
                token = session.fetch_token(self.settings.token_url, timeout=TIMEOUT, **kwargs)
            except OAuthError as exc:
                raise Refused(_reason(exc.error, exc.description)) from None
            except RequestException as exc:
                raise Unreachable(f"token endpoint: {type(exc).__name__}") from None
        return _grant(token)

    def app_token(self) -> Grant:
        return self._token(grant_type="client_credentials")

    def refresh(self, refresh_token: str) -> Grant:
        return self._token(grant_type="refresh_token", refresh_token=refresh_token)

    def start_device(self) -> DeviceStart:
        from requests import RequestException

        data = {"client_id": self.settings.client_id, **({"scope": self.scope} if self.scope else {})}
        with self._session() as session:
            try:
                answer = session.post(
                    self.settings.device_url, data=data, timeout=TIMEOUT, withhold_token=True
                )
            except RequestException as exc:
                raise Unreachable(f"device endpoint: {type(exc).__name__}") from None
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200 or "device_code" not in body:
            raise Refused(
                _reason(body.get("error", f"HTTP {answer.status_code}"), body.get("error_description"))
            )
        return DeviceStart(
            verification_uri=body.get("verification_uri_complete") or body["verification_uri"],
            user_code=body["user_code"],
            interval=float(body.get("interval", 5)),
            expires_in=float(body.get("expires_in", 900)),
            handle=body["device_code"],
        )

    def poll_device(self, start: DeviceStart) -> Grant | None:
        try:
            return self._token(
                grant_type="urn:ietf:params:oauth:grant-type:device_code", device_code=start.handle
            )
        except Refused as exc:
            error = str(exc).split(":")[0]
            if error == "slow_down":
                raise SlowDown() from None
            if error in PENDING:
                return None
            raise

    def start_installed(self, redirect_uri: str) -> InstalledStart:
        from authlib.common.security import generate_token

        verifier = generate_token(64)  # RFC 7636: 43 to 128 unreserved characters
        with self._session(redirect_uri) as session:
            url, state = session.create_authorization_url(
                self.settings.auth_url, code_verifier=verifier, **self.auth_params
            )
        return InstalledStart(url=url, redirect_uri=redirect_uri, state=state, verifier=verifier)

    def finish_installed(self, start: InstalledStart, code: str) -> Grant:
        return self._token(
            start.redirect_uri, grant_type="authorization_code", code=code, code_verifier=start.verifier
        )


class MicrosoftProvider:
    """Microsoft identity platform (Entra ID) through msal."""

    def __init__(self, settings: OAuthSettings, *, authority: str = ""):
        """`authority` stands in for Microsoft's (the tests' provider on loopback); it is then not
        checked against Microsoft's list of authorities. Certificates are checked as requests does
        (REQUESTS_CA_BUNDLE, else certifi's)."""
        self.settings = settings
        self.authority = authority or MICROSOFT_AUTHORITY.format(tenant=settings.tenant)
        self._own: dict[str, Any] = {}
        if authority:
            self._own = {"instance_discovery": False, "validate_authority": False}

    def _app(self) -> Any:
        import msal

        if self.settings.flow == "client_credentials":
            return msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=self.settings.client_secret,
                authority=self.authority,
                **self._own,
            )
        return msal.PublicClientApplication(self.settings.client_id, authority=self.authority, **self._own)

    @property
    def scopes(self) -> list[str]:
        default = (
            MICROSOFT_APP_SCOPES if self.settings.flow == "client_credentials" else MICROSOFT_DELEGATED_SCOPES
        )
        return _scopes(self.settings, default)

    def app_token(self) -> Grant:
        return _msal_grant(self._call(lambda: self._app().acquire_token_for_client(scopes=self.scopes)))

    def refresh(self, refresh_token: str) -> Grant:
        return _msal_grant(
            self._call(lambda: self._app().acquire_token_by_refresh_token(refresh_token, scopes=self.scopes))
        )

    def start_device(self) -> DeviceStart:
        app = self._call(lambda: self._app())
        flow = self._call(lambda: app.initiate_device_flow(scopes=self.scopes))
        if "user_code" not in flow:
            raise Refused(_reason(flow.get("error", "no device code"), flow.get("error_description")))
        return DeviceStart(
            verification_uri=flow["verification_uri"],
            user_code=flow["user_code"],
            interval=float(flow.get("interval", 5)),
            expires_in=float(flow.get("expires_in", 900)),
            handle=(app, flow),
        )

    def poll_device(self, start: DeviceStart) -> Grant | None:
        app, flow = start.handle
        flow["expires_at"] = 0  # msal's documented way to make it poll once and return
        result = self._call(lambda: app.acquire_token_by_device_flow(flow))
        if result.get("error") in PENDING:
            return None
        return _msal_grant(result)

    def start_installed(self, redirect_uri: str) -> InstalledStart:
        raise Refused("microsoft: use device_code to sign a person in")

    def finish_installed(self, start: InstalledStart, code: str) -> Grant:
        raise Refused("microsoft: no installed_app flow")

    def _call(self, action: Any) -> Any:
        """msal's answer; its network and authority errors as Unreachable."""
        from requests import RequestException

        try:
            return action()
        except (RequestException, ValueError) as exc:  # msal raises ValueError on a bad authority
            raise Unreachable(f"login.microsoftonline.com: {type(exc).__name__}") from None


class GoogleProvider:
    """Google Workspace through google-auth: a service account that acts as the mailbox's user
    (domain-wide delegation); or Gmail and Workspace through the installed-app flow, a person
    signing in once in a browser (authlib with Google's endpoints, which `auth_url` and
    `token_url` stand in for in the tests)."""

    def __init__(
        self,
        settings: OAuthSettings,
        account: str,
        *,
        auth_url: str = GOOGLE_AUTH_URL,
        token_url: str = GOOGLE_TOKEN_URL,
    ):
        self.settings, self.account = settings, account
        scope = " ".join(_scopes(settings, GOOGLE_SCOPES))
        self._installed = GenericProvider(
            replace(settings, auth_url=auth_url, token_url=token_url, scope=scope),
            auth_params={**GOOGLE_AUTH_PARAMS, "login_hint": account},
        )

    def app_token(self) -> Grant:
        import google.auth.exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(
            str(self.settings.service_account),
            scopes=_scopes(self.settings, GOOGLE_SCOPES),
            subject=self.account,
        )
        try:
            credentials.refresh(Request())
        except google.auth.exceptions.RefreshError as exc:
            raise Refused(_reason("refused", str(exc.args[0]) if exc.args else "")) from None
        except google.auth.exceptions.TransportError as exc:
            raise Unreachable(f"oauth2.googleapis.com: {type(exc).__name__}") from None
        expiry = credentials.expiry
        # google-auth's expiry is a naive datetime in UTC.
        seconds = (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() if expiry else 3600
        return Grant(credentials.token, seconds)

    def refresh(self, refresh_token: str) -> Grant:
        return self._installed.refresh(refresh_token)

    def start_device(self) -> DeviceStart:
        raise Refused("google: Google does not grant the mail scope to the device flow; use installed_app")

    def poll_device(self, start: DeviceStart) -> Grant | None:
        raise Refused("google: no device flow")

    def start_installed(self, redirect_uri: str) -> InstalledStart:
        return self._installed.start_installed(redirect_uri)

    def finish_installed(self, start: InstalledStart, code: str) -> Grant:
        return self._installed.finish_installed(start, code)


def _grant(token: dict[str, Any]) -> Grant:
    return Grant(
        access_token=token["access_token"],
        expires_in=float(token.get("expires_in", 3600)),
        refresh_token=token.get("refresh_token"),
    )


def _msal_grant(result: dict[str, Any]) -> Grant:
    if "access_token" not in result:
        raise Refused(_reason(result.get("error", "refused"), result.get("error_description")))
    return _grant(result)


def _reason(error: str | None, description: str | None) -> str:
    """`error: description`, first line only (Microsoft's descriptions run to trace ids)."""
    text = f"{error or 'refused'}: {description}" if description else (error or "refused")
    return text.splitlines()[0][:300]
