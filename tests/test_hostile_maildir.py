"""A Maildir file name used twice, as the README's quick start invites (`cp customer-mail.eml
new/`, edit, copy again), through `mailbot poll --once` and a real SMTP server: a different
mail under a name already seen is a new mail, not "already seen", and moving it to cur/ keeps
the first one's file; the very same bytes again are still one ticket. Counted: tickets, files
in cur/ with their contents, and acknowledgements received."""

from __future__ import annotations

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"
ERIN = "erin@produsoft.test"
DANA = "dana@customer.test"

pytestmark = pytest.mark.servers


def test_a_reused_file_name_is_a_new_mail_and_overwrites_nothing(tmp_path, smtp_sink):
    maildir = tmp_path / "visi-maildir"
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": f"maildir://{maildir}"}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    site.poll()  # creates the Maildir

    first = write_mail(DANA, VISI, "Licence server down", "It stopped this morning.")
    second = write_mail(DANA, VISI, "Plotter prints blank pages", "Since the update.")
    for raw in (first, second, second):  # the last one: the same bytes copied in once more
        (maildir / "new" / "customer-mail.eml").write_bytes(raw)
        site.poll()

    subjects = sorted(t["subject"] for t in site.tickets())
    assert subjects == ["Licence server down", "Plotter prints blank pages"]
    assert sum(m.rcpt_tos == [DANA] for m in smtp_sink.messages) == 2
    assert list((maildir / "new").iterdir()) == []
    kept = sorted(path.read_bytes() for path in (maildir / "cur").iterdir())
    assert kept == sorted([first, second, second]), "every file kept in cur/, none overwritten"
