"""OAuth2 as an admin configures it: each mistake named by its key, tokens that would leave the
machine in plain text refused before anything connects, the scopes each provider is asked for, and
token files that only their owner can read."""

from __future__ import annotations

import ssl
import stat
from urllib.parse import parse_qs, urlsplit

import pytest

from mailbot.config import load_settings
from mailbot.errors import ConfigError
from mailbot.oauth.providers import GOOGLE_AUTH_URL, MicrosoftProvider, provider_for
from mailbot.oauth.store import TokenStore, public
from mailbot.sources import open_source
from mailbot.transports.smtp import SmtpTransport


def env(tmp_path, **product: str) -> dict[str, str]:
    values = {
        "MAILBOT_DATA_DIR": str(tmp_path),
        "MAILBOT_PRODUCTS": "VISI",
        "MAILBOT_PRODUCT_VISI_ADDRESS": "visi@example.com",
        "MAILBOT_PRODUCT_VISI_MAILBOX": "imaps://support%40example.com@outlook.office365.com/INBOX",
    }
    values.update({f"MAILBOT_PRODUCT_VISI_{k.upper()}": v for k, v in product.items()})
    return values


MICROSOFT_APP = {
    "auth": "oauth2",
    "oauth_provider": "microsoft",
    "oauth_client_id": "0f1e2d3c",
    "oauth_client_secret": "s3cret",
    "oauth_tenant": "contoso.onmicrosoft.com",
}


def test_passwords_stay_the_default(tmp_path):
    assert load_settings(env(tmp_path)).product("VISI").oauth is None


def test_a_microsoft_app_registration_defaults_to_client_credentials(tmp_path):
    oauth = load_settings(env(tmp_path, **MICROSOFT_APP)).product("VISI").oauth
    assert oauth is not None and oauth.flow == "client_credentials" and oauth.name == "VISI"
    assert "s3cret" not in repr(oauth)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"auth": "token"}, "MAILBOT_PRODUCT_VISI_AUTH"),
        ({"oauth_provider": "yahoo"}, "MAILBOT_PRODUCT_VISI_OAUTH_PROVIDER"),
        ({"oauth_client_id": ""}, "MAILBOT_PRODUCT_VISI_OAUTH_CLIENT_ID"),
        ({"oauth_client_secret": ""}, "MAILBOT_PRODUCT_VISI_OAUTH_CLIENT_SECRET"),
        ({"oauth_tenant": ""}, "MAILBOT_PRODUCT_VISI_OAUTH_TENANT"),
        ({"oauth_flow": "password"}, "MAILBOT_PRODUCT_VISI_OAUTH_FLOW"),
        ({"oauth_provider": "google", "oauth_flow": "service_account"}, "_OAUTH_SERVICE_ACCOUNT"),
        (
            {"oauth_provider": "generic", "oauth_token_url": "http://idp.example.com/token"},
            "_OAUTH_TOKEN_URL",
        ),
        ({"oauth_provider": "generic", "oauth_token_url": "ftp://idp/token"}, "_OAUTH_TOKEN_URL"),
        (
            {"oauth_provider": "generic", "oauth_flow": "device_code", "oauth_token_url": "https://i/t"},
            "_OAUTH_DEVICE_URL",
        ),
        (
            {"oauth_provider": "generic", "oauth_flow": "installed_app", "oauth_token_url": "https://i/t"},
            "_OAUTH_AUTH_URL",
        ),
        (
            {
                "oauth_provider": "generic",
                "oauth_flow": "installed_app",
                "oauth_token_url": "https://i/t",
                "oauth_auth_url": "http://idp.example.com/authorize",
            },
            "_OAUTH_AUTH_URL",
        ),
        ({"oauth_provider": "google", "oauth_flow": "installed_app", "oauth_client_secret": ""}, "_SECRET"),
        ({"oauth_flow": "installed_app"}, "_OAUTH_FLOW"),  # microsoft signs people in by device code
    ],
)
def test_each_mistake_is_named_by_its_key(tmp_path, change, key):
    with pytest.raises(ConfigError, match=key) as error:
        load_settings(env(tmp_path, **{**MICROSOFT_APP, **change}))
    assert "s3cret" not in str(error.value)


def test_a_generic_provider_on_loopback_may_use_http(tmp_path):
    settings = load_settings(
        env(
            tmp_path,
            **{**MICROSOFT_APP, "oauth_provider": "generic", "oauth_token_url": "http://127.0.0.1:8/t"},
        )
    )
    assert settings.product("VISI").oauth.token_url == "http://127.0.0.1:8/t"


def test_sending_has_its_own_oauth_keys(tmp_path):
    values = env(tmp_path)
    values.update(
        MAILBOT_SMTP_URL="smtp://support%40example.com@smtp.office365.com:587?starttls=true",
        MAILBOT_SMTP_AUTH="oauth2",
        MAILBOT_SMTP_OAUTH_PROVIDER="microsoft",
        MAILBOT_SMTP_OAUTH_FLOW="device_code",
        MAILBOT_SMTP_OAUTH_CLIENT_ID="0f1e2d3c",
        MAILBOT_SMTP_OAUTH_TENANT="contoso.onmicrosoft.com",
    )
    oauth = load_settings(values).smtp_oauth
    assert oauth is not None and oauth.name == "SMTP" and oauth.flow == "device_code"


def never_called(renew: bool) -> str:
    raise AssertionError("no token may be asked for")


def test_a_token_never_leaves_the_machine_in_plain_text():
    context = ssl.create_default_context()
    with pytest.raises(ConfigError, match="only sent over TLS"):
        open_source("imap://support%40example.com@mail.example.com/INBOX", ssl_context=context, timeout=5,
                    token=never_called)  # fmt: skip
    with pytest.raises(ConfigError, match="only sent over TLS"):
        SmtpTransport("smtp://support%40example.com@mail.example.com:587", ssl_context=context, timeout=5,
                      token=never_called)  # fmt: skip
    # TLS, or loopback (the tests), is fine; nothing connects yet.
    open_source("imaps://support%40example.com@mail.example.com/INBOX", ssl_context=context, timeout=5,
                token=never_called)  # fmt: skip
    open_source("imap://u@127.0.0.1:1/INBOX", ssl_context=context, timeout=5, token=never_called)
    SmtpTransport("smtp://u%40example.com@mail.example.com:587?starttls=true", ssl_context=context, timeout=5,
                  token=never_called)  # fmt: skip


def test_the_scopes_each_provider_asks_for(tmp_path):
    app = load_settings(env(tmp_path, **MICROSOFT_APP)).product("VISI").oauth
    assert app is not None
    microsoft = provider_for(app, "support@example.com")
    assert isinstance(microsoft, MicrosoftProvider)
    assert microsoft.scopes == ["https://outlook.office365.com/.default"]  # app-only: what was granted
    assert microsoft.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    delegated = load_settings(env(tmp_path, **{**MICROSOFT_APP, "oauth_flow": "device_code"})).product("VISI")
    assert MicrosoftProvider(delegated.oauth).scopes == [  # type: ignore[arg-type]
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    ]


def test_google_is_asked_for_gmail_through_the_browser_with_pkce(tmp_path):
    """What a person's browser would be sent to: Google's authorization endpoint, the Gmail scope,
    a refresh token (offline), the account to sign in as, an S256 challenge and a fresh state;
    and a redirect to 127.0.0.1, as RFC 8252 has it for an installed app."""
    values = {
        **MICROSOFT_APP,
        "oauth_provider": "google",
        "oauth_flow": "installed_app",
        "oauth_client_id": "123-abc.apps.googleusercontent.com",
        "oauth_client_secret": "GOCSPX-desktop",
    }
    oauth = load_settings(env(tmp_path, **values)).product("VISI").oauth
    assert oauth is not None
    google = provider_for(oauth, "support@example.com")
    first = google.start_installed("http://127.0.0.1:8765/")
    second = google.start_installed("http://127.0.0.1:8765/")
    url = urlsplit(first.url)
    asked = {key: values[-1] for key, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == GOOGLE_AUTH_URL
    assert asked["scope"] == "https://mail.google.com/"
    assert asked["redirect_uri"] == "http://127.0.0.1:8765/"
    assert asked["client_id"] == "123-abc.apps.googleusercontent.com"
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert asked["access_type"] == "offline" and asked["login_hint"] == "support@example.com"
    assert asked["state"] == first.state and first.state != second.state
    assert first.verifier not in first.url and "GOCSPX" not in first.url  # proven at the exchange only


def test_token_files_are_private_and_written_whole(tmp_path):
    store = TokenStore(tmp_path / "oauth", "VISI")
    store.save({"access_token": "at-1", "refresh_token": "rt-1", "account": "a@example.com"})
    store.save({"access_token": "at-2", "refresh_token": "rt-2", "account": "a@example.com"})
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.folder.iterdir()) == ["VISI.json"]  # no temporary file left
    assert store.load()["refresh_token"] == "rt-2"
    assert public(store.load()) == {"account": "a@example.com"}
