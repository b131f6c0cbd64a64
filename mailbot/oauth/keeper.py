"""Hands a mailbox a fresh OAuth2 access token, and never goes silent about one it cannot get.

`TokenKeeper.access_token()` answers from the token file while the token is good for more than
`REFRESH_MARGIN`; otherwise, under the file's lock, it reads the file again (another process may
have refreshed meanwhile), asks the provider (client credentials, or the stored refresh token),
and stores what came back, a rotated refresh token included, *before* the access token is handed
out: a crash after the provider answered and before the next login finds the new refresh token on
disk. A refusal is written to the file (the last error, for `mailbot oauth status`) and raised as
`TokenRefused`, which names the mailbox and the provider's reason and says what to run.

`login` is `mailbot oauth login NAME`: the device-code flow, or the installed-app flow (a browser
comes back to a listener on 127.0.0.1, `loopback`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbot.config_values import SIGN_IN_FLOWS, OAuthSettings
from mailbot.errors import TokenRefused, TransientError
from mailbot.oauth.loopback import Redirect
from mailbot.oauth.providers import Grant, Provider, Refused, SlowDown, Unreachable, provider_for
from mailbot.oauth.store import TokenStore, public

log = logging.getLogger(__name__)
REFRESH_MARGIN = 300.0  # seconds: refresh a token this long before it expires
BROWSER_WAIT = 600.0  # seconds the installed-app flow waits for the browser to come back


class TokenKeeper:
    def __init__(
        self,
        settings: OAuthSettings,
        folder: Path,
        account: str,
        *,
        provider: Provider | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings, self.account, self.clock = settings, account, clock
        self.name = settings.name
        self.store = TokenStore(folder, settings.name)
        self.provider = provider or provider_for(settings, account)

    def access_token(self, renew: bool = False) -> str:
        """A token good for at least REFRESH_MARGIN; `renew` when the server refused the one
        stored (revoked early) to get another."""
        state = self.store.load()
        if not renew and self._good(state):
            return str(state["access_token"])
        stale = state.get("access_token")
        with self.store.locked():
            state = self.store.load()
            if self._good(state) and not (renew and state.get("access_token") == stale):
                return str(state["access_token"])  # another process refreshed meanwhile
            grant = self._ask(state)
            self._store(state, grant)
        log.info("%s: OAuth2 token refreshed, good for %d s", self.name, grant.expires_in)
        return grant.access_token

    def _good(self, state: dict[str, Any]) -> bool:
        return (
            bool(state.get("access_token"))
            and float(state.get("expires_at", 0)) - self.clock() > REFRESH_MARGIN
        )

    def _ask(self, state: dict[str, Any]) -> Grant:
        try:
            if self.settings.flow in SIGN_IN_FLOWS:
                if not state.get("refresh_token"):
                    raise Refused("nobody has signed in yet")
                return self.provider.refresh(str(state["refresh_token"]))
            return self.provider.app_token()
        except Refused as exc:
            self._note_error(state, str(exc))
            raise TokenRefused(self.name, str(exc)) from None
        except Unreachable as exc:
            raise TransientError(f"OAuth2 token for {self.name}: provider unreachable: {exc}") from None

    def _store(self, state: dict[str, Any], grant: Grant) -> None:
        state.update(
            provider=self.settings.provider,
            flow=self.settings.flow,
            account=self.account,
            access_token=grant.access_token,
            expires_at=self.clock() + grant.expires_in,
            last_refresh=_iso(self.clock()),
            last_error="",
        )
        if grant.refresh_token:  # rotated: the old one is dead from now on
            state["refresh_token"] = grant.refresh_token
        self.store.save(state)

    def _note_error(self, state: dict[str, Any], error: str) -> None:
        state.update(last_error=error, last_error_at=_iso(self.clock()))
        state.pop("access_token", None)  # a refused grant: the old token will not do either
        self.store.save(state)

    # -- sign-in ----------------------------------------------------------------------------

    def login(
        self, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep, port: int = 0
    ) -> None:
        """A person signs in (device code, or installed app through a browser and a listener on
        127.0.0.1:`port`, 0 for any free port); the tokens are stored. Client credentials and
        service accounts need no sign-in: one token is fetched to prove the settings work."""
        if self.settings.flow not in SIGN_IN_FLOWS:
            self.access_token(renew=True)
            say(f"{self.name}: {self.settings.flow} works; no sign-in needed")
            return
        try:
            if self.settings.flow == "installed_app":
                grant = self._sign_in_by_browser(say, port)
            else:
                grant = self._sign_in_by_device(say, sleep)
        except Refused as exc:
            raise TokenRefused(self.name, str(exc)) from None
        except Unreachable as exc:
            raise TransientError(f"OAuth2 sign-in for {self.name}: provider unreachable: {exc}") from None
        with self.store.locked():
            self._store(self.store.load(), grant)
        say(f"{self.name}: signed in; tokens stored in {self.store.path}")

    def _sign_in_by_browser(self, say: Callable[[str], None], port: int) -> Grant:
        """RFC 8252: the browser is sent to the provider and comes back to 127.0.0.1 with a code
        (checked against the state sent), which is exchanged with the PKCE verifier."""
        try:
            redirect = Redirect(port)
        except OSError as exc:
            raise Refused(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        with redirect:
            start = self.provider.start_installed(redirect.uri)
            say(f"To let mailbot read and send mail as {self.account}, open this address in a browser:")
            say(start.url)
            say(
                f"The browser then comes back to {redirect.uri} on this machine. From another machine, "
                f"first run there: ssh -L {redirect.port}:127.0.0.1:{redirect.port} {socket.gethostname()}"
            )
            say(f"Waiting for the browser (up to {int(BROWSER_WAIT // 60)} minutes)...")
            code = redirect.wait(start.state, BROWSER_WAIT)
        return self.provider.finish_installed(start, code)

    def _sign_in_by_device(self, say: Callable[[str], None], sleep: Callable[[float], None]) -> Grant:
        """RFC 8628: tell the person where to go and the code, poll until they have signed in."""
        start = self.provider.start_device()
        say(f"To let mailbot read and send mail as {self.account}, open {start.verification_uri}")
        say(f"and enter the code {start.user_code} (within {int(start.expires_in // 60)} minutes).")
        deadline = self.clock() + start.expires_in
        grant, interval = None, start.interval
        while grant is None:
            if self.clock() > deadline:
                raise Refused("the code expired before anyone signed in")
            sleep(interval)
            try:
                grant = self.provider.poll_device(start)
            except SlowDown:
                interval += 5
        return grant

    def status(self) -> dict[str, Any]:
        """What `mailbot oauth status` shows: never a token."""
        state = public(self.store.load())
        expires = state.pop("expires_at", None)
        return {
            "name": self.name,
            "provider": self.settings.provider,
            "flow": self.settings.flow,
            "account": self.account,
            "signed_in": bool(self.store.load().get("refresh_token"))
            or self.settings.flow not in SIGN_IN_FLOWS,
            "expires_at": _iso(expires) if expires else None,
            "last_refresh": state.get("last_refresh"),
            "last_error": state.get("last_error", ""),
            "last_error_at": state.get("last_error_at"),
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
