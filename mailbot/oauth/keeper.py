"""Hands a mailbox a fresh OAuth2 access token, and never goes silent about one it cannot get.

`TokenKeeper.access_token()` answers from the token file while the token is good for more than
`REFRESH_MARGIN`; otherwise, under the file's lock, it reads the file again (another process may
have refreshed meanwhile), asks the provider (client credentials, or the stored refresh token),
and stores what came back, a rotated refresh token included, *before* the access token is handed
out: a crash after the provider answered and before the next login finds the new refresh token on
disk. A refusal is written to the file (the last error, for `mailbot oauth status`) and raised as
`TokenRefused`, which names the mailbox and the provider's reason and says what to run.

`login` is the device-code flow of `mailbot oauth login NAME`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbot.config_values import OAuthSettings
from mailbot.errors import TokenRefused, TransientError
from mailbot.oauth.providers import Grant, Provider, Refused, SlowDown, Unreachable, provider_for
from mailbot.oauth.store import TokenStore, public

log = logging.getLogger(__name__)
REFRESH_MARGIN = 300.0  # seconds: refresh a token this long before it expires


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
            if self.settings.flow == "device_code":
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

    def login(self, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
        """The device-code flow: tell the person where to go, poll until they have signed in,
        store the tokens. Client credentials and service accounts need no sign-in: one token is
        fetched to prove the settings work."""
        if self.settings.flow != "device_code":
            self.access_token(renew=True)
            say(f"{self.name}: {self.settings.flow} works; no sign-in needed")
            return
        try:
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
        except Refused as exc:
            raise TokenRefused(self.name, str(exc)) from None
        except Unreachable as exc:
            raise TransientError(f"OAuth2 sign-in for {self.name}: provider unreachable: {exc}") from None
        with self.store.locked():
            self._store(self.store.load(), grant)
        say(f"{self.name}: signed in; tokens stored in {self.store.path}")

    def status(self) -> dict[str, Any]:
        """What `mailbot oauth status` shows: never a token."""
        state = public(self.store.load())
        expires = state.pop("expires_at", None)
        return {
            "name": self.name,
            "provider": self.settings.provider,
            "flow": self.settings.flow,
            "account": self.account,
            "signed_in": bool(self.store.load().get("refresh_token")) or self.settings.flow != "device_code",
            "expires_at": _iso(expires) if expires else None,
            "last_refresh": state.get("last_refresh"),
            "last_error": state.get("last_error", ""),
            "last_error_at": state.get("last_error_at"),
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
