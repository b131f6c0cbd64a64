"""An error in mailbot itself, not in the mail: Dana's mail with a log file attached cannot be
stored because the attachments folder cannot be written (made immutable, which holds for root
too). Her mail is kept in quarantine with the reason, the other mails of the pass are handled,
the admin is alerted by mail, and `poll --once` and `ingest` end with EX_SOFTWARE (70) so that
cron and the MTA see that something needs a person. A mail that is itself bad is quarantined
too, but that is the mail's fault: the pass ends with 0."""

from __future__ import annotations

import mailbox

from tests.helpers.lockdown import immutable
from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ADMIN = "admin@produsoft.test"


def make_visi(root) -> Site:
    site = make_site(root, {"VISI": {"address": VISI, "unknown_senders": "open"}}, alert_address=ADMIN)
    site.add_account(DANA, "VISI")
    return site


def deliver(site: Site, name: str, raw: bytes) -> None:
    maildir = site.data_dir / "maildirs" / "VISI"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "tmp" / name).write_bytes(raw)
    (maildir / "tmp" / name).rename(maildir / "new" / name)


def with_log_file() -> bytes:
    return write_mail(
        DANA,
        VISI,
        "Export fails",
        "The log is attached.",
        attachments=[("export.log", b"10:00:01 ERROR export aborted\n" * 50, "text/plain")],
    )


def alerts_mailed(site: Site) -> list[str]:
    if not (site.data_dir / "outbox").is_dir():  # nothing was ever sent
        return []
    box = mailbox.Maildir(site.data_dir / "outbox", create=False)
    return [" ".join(str(m["Subject"]).split()) for m in box if str(m["To"]) == ADMIN]


def mailbot_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]


def test_an_internal_error_quarantines_the_mail_alerts_the_admin_and_poll_exits_70(tmp_path):
    site = make_visi(tmp_path)
    deliver(site, "garbage", b"\x00\x01\x02 not a mail at all")  # the mail's fault: handled, exit 0
    assert mailbot_lines(site.mailbot("poll", "--once")) == []
    assert site.query("SELECT outcome FROM seen") == [("quarantined",)]
    [bad_mail_alert] = alerts_mailed(site)  # kept and reported, but not as mailbot's own error
    assert "quarantined" in bad_mail_alert and "error in mailbot" not in bad_mail_alert

    deliver(site, "a-with-log", with_log_file())
    deliver(site, "b-plain", write_mail("erin@company.test", VISI, "Licence server down", "Nothing starts."))
    (site.data_dir / "attachments").mkdir(parents=True)
    with immutable(site.data_dir / "attachments"):
        result = site.mailbot("poll", "--once", expect=70)
    [line] = mailbot_lines(result)
    assert "1 mail(s) quarantined after an internal error" in line  # the log has its traceback
    assert sorted(site.query("SELECT outcome FROM seen")) == [("quarantined",), ("quarantined",), ("ticket",)]
    [(reason,)] = site.query("SELECT reason FROM seen WHERE reason LIKE 'could not be handled%'")
    assert reason.startswith("could not be handled: PermissionError")
    kept = [path.read_bytes() for path in site.data_dir.joinpath("quarantine").glob("*.eml")]
    assert delivered(site, "a-with-log") in kept
    internal = [s for s in alerts_mailed(site) if s != bad_mail_alert]
    assert internal == ["[mailbot alert] VISI: a mail was quarantined after an error in mailbot"]

    site.mailbot("poll", "--once")  # handled, quarantined: the next pass has nothing to say
    assert len(alerts_mailed(site)) == 2


def delivered(site: Site, name: str) -> bytes:
    """The raw mail as it was delivered (its Maildir file moved to cur/ once handled)."""
    [path] = (site.data_dir / "maildirs" / "VISI" / "cur").glob(f"{name}*")
    return path.read_bytes()


def test_ingest_finishes_the_other_mails_and_exits_70_after_an_internal_error(tmp_path):
    site = make_visi(tmp_path)
    first, second = tmp_path / "first.eml", tmp_path / "second.eml"
    first.write_bytes(with_log_file())
    second.write_bytes(write_mail("erin@company.test", VISI, "Licence server down", "Nothing starts."))
    (site.data_dir / "attachments").mkdir(parents=True)
    with immutable(site.data_dir / "attachments"):
        result = site.mailbot("ingest", "VISI", str(first), str(second), expect=70)
    assert f"{first}: quarantined" in result.stdout and f"{second}: ticket VISI-1" in result.stdout
    [line] = mailbot_lines(result)
    assert "quarantined after an internal error" in line
    assert site.query("SELECT count(*) FROM outbox WHERE template = 'alert-internal-error'") == [(1,)]
