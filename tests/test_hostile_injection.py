"""Hostile text in mail, through a real Dovecot, `poll --once` and a real SMTP server: encoded
line breaks in subjects and display names never add a header or a recipient to what we send
(S5); template syntax from a sender stays text (S6); script and event handlers in a sender's
HTML never reach the HTML we send (S7). Every test counts what the SMTP server received."""

from __future__ import annotations

import base64
import re
import uuid

import pytest

from tests.helpers.mails import message_id_of, parse, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
MALLORY = "mallory@outside.test"


def b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def raw_mail(
    sender: str,
    subject: str,
    body: str = "Hello.",
    *,
    to: str = VISI,
    content_type: str = "text/plain; charset=utf-8",
    extra: str = "",
) -> bytes:
    """A mail exactly as given: header values are not encoded or checked on the way."""
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{extra}"
    )
    return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def deliver(dovecot, mail_user, *raws: bytes) -> None:
    for raw in raws:
        dovecot.append(mail_user.name, raw)


def header_lines(raw: bytes) -> list[str]:
    """The header section as the receiving server sees it, folded lines joined."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.sub(r"\r\n[ \t]", " ", head).split("\r\n")


def assert_one_clean_envelope(mail, expected_rcpt: str) -> None:
    """One recipient, the one expected, in the envelope and in To; one Subject; no Cc or Bcc,
    and no header line that a decoded line break could have started."""
    assert mail.rcpt_tos == [expected_rcpt]
    names = [line.split(":", 1)[0].lower() for line in header_lines(mail.raw)]
    assert names.count("subject") == 1 and names.count("to") == 1 and names.count("from") == 1
    assert "bcc" not in names and "cc" not in names
    assert [a.addr_spec for a in mail.message["To"].addresses] == [expected_rcpt]
    assert "x.test" not in " ".join(mail.rcpt_tos)


def test_line_breaks_in_subjects_and_names_add_no_header_and_no_recipient(
    site, dovecot, mail_user, smtp_sink
):
    deliver(
        dovecot,
        mail_user,
        # S5's own example: "Hi\r\nBcc: evil@x.test", and a name with an encoded line break.
        raw_mail(f"=?utf-8?q?Dana=0D=0ABcc=3A_evil1=40x.test?= <{DANA}>", b_word("Hi\r\nBcc: evil@x.test")),
        # Unicode line and paragraph separators, NEL, and a bare LF, all at once.
        raw_mail(
            DANA, b_word("Printer\u2028Bcc: evil2@x.test\u0085Cc: evil3@x.test\nTo: evil4@x.test\u2029X")
        ),
        # A stranger, so the refusal (addressed with the name they gave) is checked too.
        raw_mail(
            f"=?utf-8?q?Mallory=0D=0ABcc=3A_evil5=40x.test?= <{MALLORY}>",
            "=?utf-8?q?Hello=0D=0ABcc=3A_evil6=40x.test?=",
        ),
    )
    site.poll()
    sent = smtp_sink.wait_for(5)
    by_rcpt = {r: [m for m in sent if m.rcpt_tos == [r]] for r in (DANA, ERIN, MALLORY)}
    assert [len(by_rcpt[r]) for r in (DANA, ERIN, MALLORY)] == [2, 2, 1] and len(sent) == 5
    for rcpt, mails in by_rcpt.items():
        for mail in mails:
            assert_one_clean_envelope(mail, rcpt)
    subjects = sorted(t["subject"] for t in site.tickets())
    assert subjects == [
        "Hi Bcc: evil@x.test",
        "Printer Bcc: evil2@x.test Cc: evil3@x.test To: evil4@x.test X",
    ]
    [refusal] = by_rcpt[MALLORY]
    assert refusal.message["Subject"] == "Re: Hello Bcc: evil6@x.test"
    assert refusal.message["To"].addresses[0].display_name == "Mallory Bcc: evil5@x.test"

    # The engineer answers with the subject as the mail client shows it: the relay is clean too.
    smtp_sink.clear()
    first = next(m for m in by_rcpt[ERIN] if "[VISI-1]" in m.message["Subject"])
    deliver(
        dovecot,
        mail_user,
        write_mail(
            ERIN, VISI, f"Re: {first.message['Subject']}", "On it.", in_reply_to=message_id_of(first.message)
        ),
    )
    site.poll()
    [relay] = smtp_sink.wait_for(1)
    assert_one_clean_envelope(relay, DANA)


def test_a_new_sender_with_a_line_break_in_the_name_gets_an_account_with_one_line(
    tmp_path, dovecot, mail_user, smtp_sink
):
    open_product = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    site = make_site(tmp_path, {"OPEN": open_product}, smtp_url=smtp_sink.url)
    site.add_account(ERIN, "OPEN", "engineer")
    name = "=?utf-8?q?Eve=0D=0ABcc=3A_evil=40x.test=0D=0A_=3Cimg_src=3Dx_onerror=3Dalert=281=29=3E?="
    deliver(dovecot, mail_user, raw_mail(f"{name} <{MALLORY}>", b_word("Trial\r\nCc: evil@x.test")))
    site.poll()
    sent = smtp_sink.wait_for(2)
    assert len(sent) == 2 and sorted(m.rcpt_tos[0] for m in sent) == sorted([MALLORY, ERIN])
    for mail in sent:
        assert_one_clean_envelope(mail, mail.rcpt_tos[0])
        assert_html_safe(html_part(mail))  # the name is in the team's HTML, escaped
    [account] = [a for a in site.json("account", "list") if a["email"] == MALLORY]
    assert account["name"] == "Eve Bcc: evil@x.test <img src=x onerror=alert(1)>"
    [team] = [m for m in sent if m.rcpt_tos == [ERIN]]
    assert "Eve Bcc: evil@x.test &lt;img src=x onerror=alert(1)&gt;" in html_part(team)


TEMPLATE_SUBJECT = "{{ 7*7 }} and {% for x in (1, 2) %}X{% endfor %}"
TEMPLATE_BODY = (
    "Result: {{ 7*7 }}\n{{ ''.__class__.__mro__ }}\n{% for x in range(3) %}Y{% endfor %}\n"
    "{{ config }} {# hidden #} {% raw %}"
)


def text_part(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def html_part(mail) -> str:
    body = mail.message.get_body(("html",))
    return body.get_content() if body is not None else ""


def test_template_syntax_from_a_sender_is_shown_literally(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, TEMPLATE_SUBJECT, TEMPLATE_BODY))
    site.poll()
    sent = smtp_sink.wait_for(2)
    [ack] = [m for m in sent if m.rcpt_tos == [DANA]]
    [team] = [m for m in sent if m.rcpt_tos == [ERIN]]
    for mail in (ack, team):
        assert mail.message["Subject"] == f"[VISI-1] {TEMPLATE_SUBJECT}"
        assert TEMPLATE_SUBJECT in text_part(mail)
    for line in TEMPLATE_BODY.splitlines():
        assert line in text_part(team)
    html = html_part(team)
    assert "{{ 7*7 }}" in html and "{% for x in range(3) %}Y{% endfor %}" in html
    assert "{{ &#39;&#39;.__class__.__mro__ }}" in html and "{# hidden #} {% raw %}" in html
    for mail in sent:
        everything = str(mail.message["Subject"]) + text_part(mail) + html_part(mail)
        assert "YYY" not in everything and "XX " not in everything and "object'>" not in everything

    # The engineer's answer, with the same tricks, reaches the customer as written.
    smtp_sink.clear()
    answer = "Try {{ 7*7 }} or {{ ticket.requester.email }} {% if true %}Z{% endif %}"
    deliver(
        dovecot,
        mail_user,
        write_mail(
            ERIN, VISI, f"Re: {team.message['Subject']}", answer, in_reply_to=message_id_of(team.message)
        ),
    )
    site.poll()
    [relay] = smtp_sink.wait_for(1)
    assert relay.rcpt_tos == [DANA] and answer in text_part(relay)
    assert "{{ 7*7 }}" in html_part(relay) and f"or {DANA}" not in text_part(relay)


HOSTILE_HTML = (
    '<p>Hi</p><script>alert("s1")</script><img src=x onerror="alert(\'s2\')">'
    '<a href="javascript:alert(\'s3\')" onclick="steal()">click</a><img src="https://tracker.test/p.gif">'
    '<iframe src="https://evil.test/frame"></iframe><svg onload="alert(\'s4\')"></svg>'
    '<style>body{background:url(https://tracker.test/css)}</style><form action="https://evil.test"><input></form>'
)
HOSTILE_TEXT = (
    'See <script>alert("t1")</script> & <b onmouseover="x()">bold</b> <a href="javascript:t2()">x</a>'
)
_TAG = re.compile(r"<[^<>]*>")


def assert_html_safe(html: str) -> None:
    tags = _TAG.findall(html)
    assert tags, "an HTML part with no markup at all is not what our templates make"
    for tag in tags:
        lowered = tag.lower()
        assert not re.match(r"</?(script|iframe|svg|form|input|style|object|embed)\b", lowered), tag
        assert not re.search(r"\son[a-z]+\s*=", lowered), tag
        for remote in ("javascript:", "tracker.test", "evil.test"):
            assert remote not in lowered, tag


def test_html_from_a_sender_never_reaches_our_html_unescaped(site, dovecot, mail_user, smtp_sink):
    deliver(
        dovecot,
        mail_user,
        write_mail(DANA, VISI, "Text and HTML", HOSTILE_TEXT, html=HOSTILE_HTML),
        raw_mail(DANA, "HTML only", HOSTILE_HTML, content_type="text/html; charset=utf-8"),
    )
    site.poll()
    sent = smtp_sink.wait_for(4)
    assert len(sent) == 4
    htmls = [html_part(m) for m in sent]
    assert all(htmls), "every mail we sent has an HTML part, and each is checked"
    for html in htmls:
        assert_html_safe(html)
    team = {m.message["X-Mailbot-Ticket"]: m for m in sent if m.rcpt_tos == [ERIN]}
    # Text mail: shown, escaped, in the team's HTML; the text part has it as written.
    assert "&lt;script&gt;alert(&#34;t1&#34;)&lt;/script&gt;" in html_part(
        team["VISI-1"]
    ) or "&lt;script&gt;alert(&quot;t1&quot;)&lt;/script&gt;" in html_part(team["VISI-1"])
    assert HOSTILE_TEXT in text_part(team["VISI-1"])
    # HTML-only mail: turned into text; what scripts held is gone, the words stay.
    only = text_part(team["VISI-2"])
    assert "Hi" in only and "click" in only
    for gone in ("s1", "s2", "s3", "s4", "steal", "tracker.test", "evil.test"):
        assert gone not in only and gone not in html_part(team["VISI-2"])
    stored = site.ticket("VISI-2")["messages"][0]["text"]
    assert "alert" not in stored and "Hi" in stored
    assert all(parse(m.raw)["Subject"] for m in sent)
