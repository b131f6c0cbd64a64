"""Microsoft 365 and Gmail, as an admin meets them, on loopback: a Dovecot whose oauth2 passdb
checks every XOAUTH2 token with a local identity provider (tests/helpers/idp.py), an SMTP server
that takes XOAUTH2 only with a token that provider vouches for, and mailbot in its own process.
A customer's mail is read and answered over OAuth2; an admin signs a mailbox in with the device
code; tokens expire, rotate and are revoked; a kill -9 right after a refresh loses nothing; and no
token ever shows in a log or an output."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import trustme

from mailbot.config_values import OAuthSettings
from mailbot.oauth.keeper import TokenKeeper
from mailbot.oauth.providers import GoogleProvider, MicrosoftProvider
from mailbot.sources import open_source
from mailbot.sources.base import Cursor
from tests.helpers.idp import JWT_GRANT, IdentityProvider
from tests.helpers.mails import write_mail
from tests.helpers.servers import HOST, Dovecot, make_workdir, remove_workdir
from tests.helpers.site import Site, make_site
from tests.helpers.smtp_sink import SmtpSink

pytestmark = pytest.mark.servers

VISI, CAD = "visi.support@produsoft.test", "cad.support@produsoft.test"
DANA = "dana@customer.test"
ADMIN = "admin@produsoft.test"
SENDER = "mailbot-sender"  # the account mailbot sends as
APP, APP_SECRET = "mailbot-app", "app-secret-Zq9"  # a confidential client (client credentials)
DEVICE_APP = "mailbot-device"  # a public client (device code)
SMTP_APP, SMTP_SECRET = "mailbot-smtp", "smtp-secret-Xw4"
BROWSER_APP = "mailbot-desktop"  # a public client (installed app: PKCE, loopback redirect)
GOOGLE_APP, GOOGLE_SECRET = "123-mailbot.apps.googleusercontent.test", "GOCSPX-desktop-Rt5"


@pytest.fixture(scope="module")
def idp():
    clients = {APP: APP_SECRET, DEVICE_APP: "", SMTP_APP: SMTP_SECRET, BROWSER_APP: ""}
    clients[GOOGLE_APP] = GOOGLE_SECRET
    with IdentityProvider(clients=clients, ca=trustme.CA()) as server:  # https too, for msal
        server.app_accounts[SMTP_APP] = SENDER
        yield server


@pytest.fixture(scope="module")
def oauth_dovecot(idp):
    workdir = make_workdir()
    try:
        with Dovecot(workdir, oauth2_introspection_url=f"{idp.url}/introspect") as server:
            yield server
    finally:
        remove_workdir(workdir)


@pytest.fixture
def sink(idp):
    def vouched(user: str, token: str) -> bool:
        return idp.introspect(token).get("username") == user

    with SmtpSink(oauth_check=vouched) as server:
        yield server


_users = iter(range(1, 1000))


def new_user(dovecot: Dovecot) -> str:
    name = f"box{next(_users)}-{os.getpid()}"
    dovecot.add_user(name, f"pw-{name}")  # the password is for the test's own helpers only
    return name


def oauth_product(dovecot: Dovecot, idp: IdentityProvider, user: str, address: str, flow: str) -> dict:
    client = {
        "client_credentials": (APP, APP_SECRET),
        "device_code": (DEVICE_APP, ""),
        "installed_app": (BROWSER_APP, ""),
    }[flow]
    return {
        "address": address,
        "mailbox": f"imap://{user}@{HOST}:{dovecot.imap_port}/INBOX",  # no password: the token logs in
        "auth": "oauth2",
        "oauth_provider": "generic",
        "oauth_flow": flow,
        "oauth_client_id": client[0],
        "oauth_client_secret": client[1],
        "oauth_token_url": f"{idp.url}/token",
        "oauth_device_url": f"{idp.url}/device",
        "oauth_auth_url": f"{idp.url}/authorize",
    }


def device_product(dovecot: Dovecot, idp: IdentityProvider, user: str) -> dict:
    return oauth_product(dovecot, idp, user, VISI, "device_code")


def oauth_site(root: Path, products: dict, idp: IdentityProvider, sink: SmtpSink) -> Site:
    site = make_site(
        root,
        products,
        smtp_url=f"smtp://{SENDER}@{HOST}:{sink.port}",
        smtp_auth="oauth2",
        smtp_oauth_provider="generic",
        smtp_oauth_client_id=SMTP_APP,
        smtp_oauth_client_secret=SMTP_SECRET,
        smtp_oauth_token_url=f"{idp.url}/token",
        alert_address=ADMIN,
        log_level="debug",  # the most a log ever says: still no token
    )
    for product in products:
        site.add_account(DANA, product, name="Dana Customer")
    site.write_env()
    return site


def run(site: Site, *args: str) -> subprocess.CompletedProcess:
    """`mailbot ARGS` in its own process; its stderr (the log) is kept in the site's mailbot.log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    with (site.root / "mailbot.log").open("a") as log:
        log.write(result.stderr)
    return result


def start(site: Site, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "mailbot.log").open("a") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def sign_in(site: Site, idp: IdentityProvider, product: str, user: str) -> str:
    """`mailbot oauth login PRODUCT` as an admin runs it: read the code it prints, approve it at
    the provider (what the admin does in the browser), and wait for it to finish."""
    proc = start(site, "oauth", "login", product)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        code = lines[1].split("the code ", 1)[1].split()[0]
        assert f"{idp.url}/device-login" in lines[0]
        form = urllib.parse.urlencode({"user_code": code, "username": user}).encode()
        urllib.request.urlopen(f"{idp.url}/approve", data=form, timeout=10).close()
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    return "".join(lines) + rest


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:  # a redirect is an answer to look at
        return None


def login_by_browser(
    site: Site, idp: IdentityProvider, product: str, user: str, *, forge_state: bool = False
) -> tuple[subprocess.CompletedProcess, str]:
    """`mailbot oauth login PRODUCT` with the installed-app flow, as an admin runs it: open the
    address it prints in a browser (the test is the browser: `user` signs in at the provider, which
    sends the browser back to mailbot's listener on 127.0.0.1). `forge_state`: the redirect that
    reaches the listener carries another state than the one mailbot sent. The run, and the page
    the browser shows at the end."""
    idp.browser_user = user
    proc = start(site, "oauth", "login", product)
    try:
        assert proc.stdout is not None
        said = [proc.stdout.readline() for _ in range(4)]
        [url] = [line.strip() for line in said if line.startswith("http")]
        redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["redirect_uri"]
        port = urllib.parse.urlsplit(redirect_uri).port
        assert redirect_uri == f"http://127.0.0.1:{port}/"
        assert f"ssh -L {port}:127.0.0.1:{port} " in "".join(said)
        for elsewhere in ("127.0.0.2", "::1"):  # 127.0.0.1 only: not even another local address
            with pytest.raises(OSError):
                socket.create_connection((elsewhere, port), timeout=5).close()
        try:
            answer = urllib.request.build_opener(_Stay).open(url, timeout=10)
            raise AssertionError(f"the provider did not redirect: {answer.status}")
        except urllib.error.HTTPError as provider:
            location = provider.headers["Location"]
            provider.close()
        if forge_state:
            location = location.replace("state=", "state=forged", 1)
        try:
            with urllib.request.urlopen(location, timeout=10) as back:
                page = back.read().decode()
        except urllib.error.HTTPError as refused:
            page = refused.read().decode()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with (site.root / "mailbot.log").open() as log:
        log_text = log.read()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(said) + out, log_text), page


def token_file(site: Site, name: str) -> dict:
    return json.loads((site.data_dir / "oauth" / f"{name}.json").read_text())


def deliver(dovecot: Dovecot, user: str, subject: str, to: str = VISI) -> None:
    dovecot.append(user, write_mail(f"Dana Customer <{DANA}>", to, subject, "It stopped working."))


def assert_no_token_leaked(site: Site, idp: IdentityProvider, *outputs: str) -> None:
    text = (site.root / "mailbot.log").read_text() + "".join(outputs)
    leaked = [token[:6] + "..." for token in idp.issued if token in text]
    assert leaked == [], "tokens in the log or the output"
    assert "Bearer" not in text


def test_a_customer_mail_read_and_answered_over_xoauth2(tmp_path, idp, oauth_dovecot, sink):
    user = new_user(oauth_dovecot)
    idp.app_accounts[APP] = user  # the app registration was given this mailbox
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "client_credentials")}, idp, sink
    )
    deliver(oauth_dovecot, user, "Export fails")
    result = run(site, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [ticket] = site.tickets()
    assert ticket["requester"] == DANA
    [ack] = [m for m in sink.wait_for(1) if DANA in m.rcpt_tos]
    assert "[VISI-1]" in ack.message["Subject"] and ack.login == SENDER
    assert sink.oauth_logins and all(ok for _, ok in sink.oauth_logins)
    grants = len(idp.grants)

    deliver(oauth_dovecot, user, "Import fails too")
    assert run(site, "poll", "--once").returncode == 0
    assert len(site.tickets()) == 2
    assert len(idp.grants) == grants  # the stored tokens, good for an hour, were used again

    for name in ("VISI", "SMTP"):
        path = site.data_dir / "oauth" / f"{name}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    status = run(site, "oauth", "status", "--json")
    rows = {row["name"]: row for row in json.loads(status.stdout)}
    assert rows["VISI"]["account"] == user and rows["VISI"]["flow"] == "client_credentials"
    assert rows["VISI"]["expires_at"] and rows["VISI"]["last_refresh"] and not rows["VISI"]["last_error"]
    assert rows["SMTP"]["account"] == SENDER
    check = run(site, "check")
    assert check.returncode == 0 and f"VISI: mailbox imap://{user}@" in check.stdout
    assert_no_token_leaked(site, idp, status.stdout, check.stdout, check.stderr)


def test_signed_in_by_device_code_the_token_expires_and_the_refresh_token_rotates(
    tmp_path, idp, oauth_dovecot, sink
):
    user = new_user(oauth_dovecot)
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "device_code")}, idp, sink
    )
    before = run(site, "poll", "--once")
    assert before.returncode == 75 and "oauth login VISI" in before.stderr  # nobody signed in yet
    said = sign_in(site, idp, "VISI", user)
    first = token_file(site, "VISI")["refresh_token"]

    deliver(oauth_dovecot, user, "Export fails")
    assert run(site, "poll", "--once").returncode == 0
    assert len(site.tickets()) == 1

    # The provider forgets the access token before its time: mailbot gets a new one, with a
    # new refresh token; the old refresh token is dead, the stored one is the new one.
    idp.expire_access_tokens()
    deliver(oauth_dovecot, user, "Import fails")
    assert run(site, "poll", "--once").returncode == 0
    assert len(site.tickets()) == 2
    second = token_file(site, "VISI")["refresh_token"]
    assert second != first and not idp.refresh_token_is_live(first) and idp.refresh_token_is_live(second)

    # Tokens that live shorter than the refresh margin are refreshed before use, every time.
    idp.access_lifetime = 120
    idp.expire_access_tokens()
    refreshes = idp.grants.count("refresh_token")
    for subject in ("One", "Two"):
        deliver(oauth_dovecot, user, subject)
        assert run(site, "poll", "--once").returncode == 0
    assert idp.grants.count("refresh_token") == refreshes + 2
    assert len(site.tickets()) == 4
    idp.access_lifetime = 3600
    status = run(site, "oauth", "status")
    assert "VISI" in status.stdout and "signed in" in status.stdout
    assert_no_token_leaked(site, idp, said, status.stdout)


def test_killed_between_refresh_and_next_use_nothing_is_lost(tmp_path, idp, oauth_dovecot, sink):
    user = new_user(oauth_dovecot)
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "device_code")}, idp, sink
    )
    idp.access_lifetime = 120  # inside the refresh margin: the next use refreshes first
    try:
        sign_in(site, idp, "VISI", user)
        signed_in = token_file(site, "VISI")["refresh_token"]
        deliver(oauth_dovecot, user, "Export fails")
        idp.hold_introspection()  # the login with the new token waits at the provider
        proc = start(site, "poll", "--once")
        try:
            assert idp.holding.wait(60), "mailbot never logged in"
            on_disk = token_file(site, "VISI")["refresh_token"]  # read at the kill point
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            idp.release()
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reaps it and closes its pipe
    finally:
        idp.access_lifetime = 3600
    assert on_disk != signed_in and not idp.refresh_token_is_live(signed_in)
    assert idp.refresh_token_is_live(on_disk)
    again = run(site, "poll", "--once")
    assert again.returncode == 0, again.stderr
    assert len(site.tickets()) == 1


def test_a_revoked_token_alerts_once_other_mailboxes_go_on_and_login_recovers(
    tmp_path, idp, oauth_dovecot, sink
):
    visi_user, cad_user = new_user(oauth_dovecot), new_user(oauth_dovecot)
    idp.app_accounts[APP] = cad_user
    products = {
        "VISI": oauth_product(oauth_dovecot, idp, visi_user, VISI, "device_code"),
        "CAD": oauth_product(oauth_dovecot, idp, cad_user, CAD, "client_credentials"),
    }
    site = oauth_site(tmp_path, products, idp, sink)
    sign_in(site, idp, "VISI", visi_user)
    idp.revoke(visi_user)  # an admin withdrew consent, or the password changed
    deliver(oauth_dovecot, visi_user, "Export fails")
    deliver(oauth_dovecot, cad_user, "Drawing lost", to=CAD)

    first = run(site, "poll", "--once")
    assert first.returncode == 75
    [line] = [line for line in first.stderr.splitlines() if line.startswith("mailbot: mailbox of VISI")]
    assert "invalid_grant" in line and "mailbot oauth login VISI" in line
    assert [t["product"] for t in site.tickets()] == ["CAD"]  # the other mailbox was served
    assert run(site, "poll", "--once").returncode == 75  # still refused: no second alert
    alerts = [m for m in sink.messages if ADMIN in m.rcpt_tos]
    [alert] = alerts
    assert "VISI" in alert.message["Subject"] and "mailbot oauth login VISI" in alert.message.get_content()
    status = json.loads(run(site, "oauth", "status", "--json").stdout)
    assert "invalid_grant" in next(row for row in status if row["name"] == "VISI")["last_error"]

    sign_in(site, idp, "VISI", visi_user)
    assert run(site, "poll", "--once").returncode == 0
    assert sorted(t["product"] for t in site.tickets()) == ["CAD", "VISI"]
    alerts = [m for m in sink.messages if ADMIN in m.rcpt_tos]
    assert len(alerts) == 2 and "again" in alerts[1].message["Subject"]
    assert_no_token_leaked(site, idp, first.stdout, first.stderr, json.dumps(status))


def test_the_daemon_serves_the_other_mailboxes_while_one_token_is_refused(tmp_path, idp, oauth_dovecot, sink):
    visi_user, cad_user = new_user(oauth_dovecot), new_user(oauth_dovecot)
    idp.app_accounts[APP] = cad_user
    products = {
        "VISI": device_product(oauth_dovecot, idp, visi_user),
        "CAD": oauth_product(oauth_dovecot, idp, cad_user, CAD, "client_credentials"),
    }
    site = oauth_site(tmp_path, products, idp, sink)
    sign_in(site, idp, "VISI", visi_user)
    idp.revoke(visi_user)
    deliver(oauth_dovecot, visi_user, "Export fails")
    deliver(oauth_dovecot, cad_user, "Drawing lost", to=CAD)
    daemon = start(site, "run")
    try:
        # CAD's acknowledgement and the admin's alert about VISI arrive, in either order.
        mails = sink.wait_for(2, timeout=60)
        assert sorted(m.rcpt_tos[0] for m in mails) == [ADMIN, DANA]
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        assert daemon.returncode == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert [t["product"] for t in site.tickets()] == ["CAD"]
    log = (site.root / "mailbot.log").read_text()
    refused = [
        line for line in log.splitlines() if "WARNING" in line and "OAuth2 token for VISI refused" in line
    ]
    assert len(refused) == 1  # once per outage, not once per retry
    assert "Traceback" not in log
    assert_no_token_leaked(site, idp)


def test_processes_side_by_side_never_refresh_over_each_other(tmp_path, idp, oauth_dovecot, sink):
    """Each refresh token works once (rotation): two processes refreshing with the same one at
    the same moment would have one of them refused. The lock makes them take turns."""
    user = new_user(oauth_dovecot)
    site = oauth_site(tmp_path, {"VISI": device_product(oauth_dovecot, idp, user)}, idp, sink)
    idp.access_lifetime = 120  # inside the refresh margin: every process refreshes
    try:
        sign_in(site, idp, "VISI", user)
        for subject in ("One", "Two", "Three"):
            deliver(oauth_dovecot, user, subject)
        procs = [start(site, "poll", "--once") for _ in range(3)]
        for proc in procs:
            proc.communicate(timeout=120)
    finally:
        idp.access_lifetime = 3600
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    assert "invalid_grant" not in (site.root / "mailbot.log").read_text()
    assert len(site.tickets()) == 3
    assert idp.refresh_token_is_live(token_file(site, "VISI")["refresh_token"])


def test_a_google_workspace_service_account_reads_the_mailbox(tmp_path, idp, oauth_dovecot, sink):
    """google-auth signs the service account's grant as it does for Google; the key file's
    token_uri points it at the local provider, which checks the signature, the user it acts
    as (domain-wide delegation) and the scope Gmail wants."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    user = new_user(oauth_dovecot)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "mailbot@produsoft-mail.iam.gserviceaccount.test"
    idp.service_accounts[email] = (
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": email,
                "private_key": pem,
                "private_key_id": "k1",
                "token_uri": f"{idp.url}/token",
            }
        )  # fmt: skip
    )
    key_file.chmod(0o600)
    product = {
        "address": VISI,
        "mailbox": f"imap://{user}@{HOST}:{oauth_dovecot.imap_port}/INBOX",
        "auth": "oauth2",
        "oauth_provider": "google",
        "oauth_flow": "service_account",
        "oauth_service_account": str(key_file),
    }
    site = oauth_site(tmp_path, {"VISI": product}, idp, sink)
    deliver(oauth_dovecot, user, "Export fails")
    result = run(site, "poll", "--once")
    assert result.returncode == 0, result.stderr
    assert len(site.tickets()) == 1
    assert f"{JWT_GRANT} https://mail.google.com/" in idp.grants
    assert_no_token_leaked(site, idp)


def test_microsoft_365_through_msal_app_only_and_device_code(tmp_path, idp, oauth_dovecot, monkeypatch):
    """msal, as it talks to login.microsoftonline.com (OpenID discovery, then the token and device
    endpoints), pointed at the local provider: the scopes Microsoft would be asked for, and
    mailboxes read over XOAUTH2 with what it got."""
    assert idp.ca is not None
    ca_file = tmp_path / "ca.pem"
    idp.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))  # how an admin trusts a private CA too
    authority = f"{idp.https_url}/contoso.onmicrosoft.com"

    def keeper_for(user: str, flow: str, client: str, secret: str) -> TokenKeeper:
        settings = OAuthSettings("VISI", "microsoft", flow, client, secret, tenant="contoso.onmicrosoft.com")
        provider = MicrosoftProvider(settings, authority=authority)
        return TokenKeeper(settings, tmp_path / flow, user, provider=provider)

    def mails_seen(user: str, keeper: TokenKeeper) -> int:
        url = f"imap://{user}@{HOST}:{oauth_dovecot.imap_port}/INBOX"
        with open_source(
            url, ssl_context=ssl.create_default_context(), timeout=10, token=keeper.access_token
        ) as box:
            return len(box.pending(Cursor()).keys)

    app_user = new_user(oauth_dovecot)
    idp.app_accounts[APP] = app_user
    deliver(oauth_dovecot, app_user, "Export fails")
    assert mails_seen(app_user, keeper_for(app_user, "client_credentials", APP, APP_SECRET)) == 1
    assert idp.scopes[-1] == "https://outlook.office365.com/.default"

    person = new_user(oauth_dovecot)
    deliver(oauth_dovecot, person, "Import fails")
    keeper = keeper_for(person, "device_code", DEVICE_APP, "")
    said: list[str] = []

    def sign_in_while_waiting(seconds: float) -> None:  # the person, while mailbot waits
        code = said[1].split("the code ", 1)[1].split()[0]
        idp.approve(code, person)

    keeper.login(said.append, sleep=sign_in_while_waiting)
    assert mails_seen(person, keeper) == 1
    asked = set(idp.scopes[-1].split())
    assert {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    } <= asked
    assert "offline_access" in asked  # msal adds it: the refresh token


def test_a_refused_sending_token_keeps_the_mail_until_it_works_again(tmp_path, idp, oauth_dovecot, sink):
    """The app's client secret was rotated at the provider and not in mailbot: nothing can be sent;
    the acknowledgement waits in the outbox, and goes once the secret is right again."""
    user = new_user(oauth_dovecot)
    idp.app_accounts[APP] = user
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "client_credentials")}, idp, sink
    )
    idp.clients[SMTP_APP] = "a-new-secret"
    try:
        deliver(oauth_dovecot, user, "Export fails")
        first = run(site, "poll", "--once")
        assert first.returncode == 75
        assert "invalid_client" in first.stderr and "mailbot oauth login SMTP" in first.stderr
        assert len(site.tickets()) == 1 and sink.messages == []
    finally:
        idp.clients[SMTP_APP] = SMTP_SECRET
    site.execute("UPDATE outbox SET next_attempt_at = created_at")  # the next try is a minute away: now
    assert run(site, "poll", "--once").returncode == 0
    [ack] = sink.wait_for(1)
    assert DANA in ack.rcpt_tos
    assert_no_token_leaked(site, idp, first.stderr)


def test_a_provider_that_asks_to_slow_down_is_polled_less_often(tmp_path, idp):
    settings = OAuthSettings(
        "VISI",
        "generic",
        "device_code",
        DEVICE_APP,
        token_url=f"{idp.url}/token",
        device_url=f"{idp.url}/device",
    )
    keeper = TokenKeeper(settings, tmp_path, "someone")
    said: list[str] = []
    waits: list[float] = []

    def person_signs_in_later(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            idp.approve(said[1].split("the code ", 1)[1].split()[0], "someone")

    idp.slow_down = 1
    keeper.login(said.append, sleep=person_signs_in_later)
    assert waits == [1, 6]  # RFC 8628: five seconds more after slow_down
    assert keeper.status()["signed_in"]


def test_signed_in_through_the_browser_a_mail_is_read_and_acknowledged_over_xoauth2(
    tmp_path, idp, oauth_dovecot, sink
):
    """The installed-app flow (RFC 8252), as personal Gmail needs it: the admin opens the printed
    address, signs in, the browser comes back to mailbot on 127.0.0.1; mailbot exchanges the code
    with its PKCE verifier, stores the tokens, reads the customer's mail over XOAUTH2 and sends the
    acknowledgement over XOAUTH2; later it refreshes the token like any other."""
    user = new_user(oauth_dovecot)
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "installed_app")}, idp, sink
    )
    login, page = login_by_browser(site, idp, "VISI", user)
    assert login.returncode == 0, login.stderr
    assert "signed in" in page and "VISI: signed in" in login.stdout
    assert idp.grants[-1] == "authorization_code"
    path = site.data_dir / "oauth" / "VISI.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = token_file(site, "VISI")["refresh_token"]
    assert idp.refresh_token_is_live(first)

    deliver(oauth_dovecot, user, "Export fails")
    result = run(site, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [ticket] = site.tickets()
    assert ticket["requester"] == DANA
    [ack] = [m for m in sink.wait_for(1) if DANA in m.rcpt_tos]
    assert "[VISI-1]" in ack.message["Subject"] and ack.login == SENDER
    assert sink.oauth_logins and all(ok for _, ok in sink.oauth_logins)

    idp.expire_access_tokens()  # later: the token is refused, refreshed, the rotated one stored
    deliver(oauth_dovecot, user, "Import fails")
    assert run(site, "poll", "--once").returncode == 0
    assert len(site.tickets()) == 2
    second = token_file(site, "VISI")["refresh_token"]
    assert second != first and idp.refresh_token_is_live(second) and not idp.refresh_token_is_live(first)
    status = run(site, "oauth", "status", "--json")
    [row] = [row for row in json.loads(status.stdout) if row["name"] == "VISI"]
    assert row["flow"] == "installed_app" and row["signed_in"] and not row["last_error"]
    assert_no_token_leaked(site, idp, login.stdout, login.stderr, page, result.stderr, status.stdout)


def test_a_browser_coming_back_with_another_state_is_refused_and_nothing_is_stored(
    tmp_path, idp, oauth_dovecot, sink
):
    user = new_user(oauth_dovecot)
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "installed_app")}, idp, sink
    )
    exchanged = idp.grants.count("authorization_code")
    login, page = login_by_browser(site, idp, "VISI", user, forge_state=True)
    assert login.returncode == 75
    assert "refused" in page
    [line] = [line for line in login.stderr.splitlines() if "state" in line]
    assert "OAuth2 token for VISI refused" in line and "mailbot oauth login VISI" in line
    assert idp.grants.count("authorization_code") == exchanged  # the code was never exchanged
    assert not (site.data_dir / "oauth" / "VISI.json").exists()
    deliver(oauth_dovecot, user, "Export fails")
    still = run(site, "poll", "--once")
    assert still.returncode == 75 and "oauth login VISI" in still.stderr  # nobody signed in
    assert site.tickets() == []
    assert_no_token_leaked(site, idp, login.stdout, login.stderr, page)


def test_a_person_who_declines_at_the_provider_is_told_what_to_run(tmp_path, idp, oauth_dovecot, sink):
    user = new_user(oauth_dovecot)
    site = oauth_site(
        tmp_path, {"VISI": oauth_product(oauth_dovecot, idp, user, VISI, "installed_app")}, idp, sink
    )
    login, page = login_by_browser(site, idp, "VISI", "")  # nobody signs in: access_denied
    assert login.returncode == 75 and "access_denied" in page
    assert "access_denied" in login.stderr and "mailbot oauth login VISI" in login.stderr
    assert not (site.data_dir / "oauth" / "VISI.json").exists()


def test_gmail_through_the_browser_with_the_google_provider(tmp_path, idp, oauth_dovecot):
    """The google provider's installed-app flow, pointed at the local provider in place of
    accounts.google.com and oauth2.googleapis.com: what Google is asked (the Gmail scope, offline
    access, the account, PKCE), the desktop client's secret at the exchange, a mailbox read with
    the token, and a refresh through the same endpoint."""
    person = new_user(oauth_dovecot)
    deliver(oauth_dovecot, person, "Export fails")
    settings = OAuthSettings("VISI", "google", "installed_app", GOOGLE_APP, GOOGLE_SECRET)
    provider = GoogleProvider(settings, person, auth_url=f"{idp.url}/authorize", token_url=f"{idp.url}/token")
    keeper = TokenKeeper(settings, tmp_path / "oauth", person, provider=provider)
    idp.browser_user = person
    said: list[str] = []
    pages: list[str] = []

    def browser(url: str) -> None:
        with urllib.request.urlopen(url, timeout=10) as page:  # follows the redirect to mailbot
            pages.append(page.read().decode())

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("http"):  # the admin opens it; mailbot is already listening
            threading.Thread(target=browser, args=(line,), daemon=True).start()

    keeper.login(say)
    assert pages and "signed in" in pages[0]
    asked = idp.authorizations[-1]
    assert asked["scope"] == "https://mail.google.com/" and asked["login_hint"] == person
    assert asked["access_type"] == "offline" and asked["code_challenge_method"] == "S256"
    url = f"imap://{person}@{HOST}:{oauth_dovecot.imap_port}/INBOX"
    context = ssl.create_default_context()
    with open_source(url, ssl_context=context, timeout=10, token=keeper.access_token) as box:
        assert len(box.pending(Cursor()).keys) == 1
    refreshes = idp.grants.count("refresh_token")
    keeper.access_token(renew=True)
    assert idp.grants.count("refresh_token") == refreshes + 1
    assert keeper.status()["signed_in"]
