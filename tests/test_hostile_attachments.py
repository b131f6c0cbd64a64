"""Hostile attachments and mail built to hurt the parser, through a real Dovecot and
`poll --once`: a sender's file name never becomes a path (S8), and a mail that is too large, too
deep or made of thousands of parts is quarantined with its reason while the pass goes on with
the next mail (P1, P2, I11, I12). The counts are taken from the file system and the CLI."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
DIGEST_PATH = re.compile(r"attachments/[0-9a-f]{2}/[0-9a-f]{64}\Z")
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"

# (Content-Disposition parameters as written on the wire, what a careless program would name it)
HOSTILE_NAMES = [
    ('filename="../../etc/cron.d/mailbot-pwned"', "mailbot-pwned"),
    ('filename="/etc/passwd"', "passwd"),
    ("filename*=utf-8''..%5C..%5Cwindows%5Csystem32%5Cevil.bat", "evil.bat"),
    ("filename*=utf-8''invoice%00.pdf%00.exe", "invoice"),
    (f'filename="{"A" * 300}.txt"', "A" * 100),
    ("filename*=utf-8''%E2%80%AEfdp.exe", "fdp.exe"),
    ('filename=".."', ".."),
    ('filename*0="../../tmp/"; filename*1="split-name.sh"', "split-name.sh"),
    ('filename="~/.ssh/authorized_keys"', "authorized_keys"),
]


def with_attachments(parts: list[tuple[str, bytes]]) -> bytes:
    chunks = [
        f"From: Dana <{DANA}>\r\nTo: {VISI}\r\nSubject: Logs attached\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
        "--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe logs, as asked.\r\n"
    ]
    for params, payload in parts:
        chunks.append(
            f"--b0\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; {params}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            f"{base64.encodebytes(payload).decode().replace(chr(10), chr(13) + chr(10))}"
        )
    chunks.append("--b0--\r\n")
    return "".join(chunks).encode()


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        max_message_size="512K",
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    return site


def files_under(root: Path) -> list[Path]:
    return sorted(Path(folder, name) for folder, _, names in os.walk(root) for name in names)


def test_attachment_names_never_become_paths(tmp_path, site, dovecot, mail_user, smtp_sink):
    payloads = [f"payload {i}: {uuid.uuid4().hex}\n".encode() * (i + 1) for i in range(len(HOSTILE_NAMES))]
    dovecot.append(
        mail_user.name,
        with_attachments(
            [(params, payload) for (params, _), payload in zip(HOSTILE_NAMES, payloads, strict=True)]
        ),
    )
    site.poll()

    [message] = site.ticket("VISI-1")["messages"][:1]
    stored = message["attachments"]
    assert len(stored) == len(HOSTILE_NAMES)
    for item in stored:
        name = item["filename"]
        assert DIGEST_PATH.match(item["path"]), item
        assert "/" not in name and "\\" not in name and "\x00" not in name and name not in ("", ".", "..")
        assert len(name) <= 150 and not any(ch in _BIDI for ch in name) and not name.startswith("~")
    assert [item["size"] for item in stored] == [len(p) for p in payloads]
    shown = [item["filename"] for item in stored]
    assert shown[0] == "mailbot-pwned" and shown[1] == "passwd" and shown[2] == "evil.bat"
    assert shown[4].endswith(".txt") and shown[5] == "fdp.exe" and shown[6] == "attachment"

    # On disk: every file of the installation is inside its data folder; the attachments are
    # exactly the payloads, each under its content hash; no file anywhere bears a sender's name.
    data = site.data_dir
    everything = files_under(tmp_path)
    assert [p for p in everything if data not in p.parents] == [site.env_file]
    attachments = files_under(data / "attachments")
    assert len(attachments) == len(payloads)
    assert sorted(p.name for p in attachments) == sorted(hashlib.sha256(p).hexdigest() for p in payloads)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in attachments)
    careless = [careless for _, careless in HOSTILE_NAMES if careless != ".."]
    assert [p for p in everything if any(c in p.name for c in careless)] == []
    for base in (Path.cwd(), data, data / "attachments", data / "attachments" / "00", tmp_path):
        assert not (base / "../../etc/cron.d/mailbot-pwned").resolve().exists()
        assert not (base / "../../tmp/split-name.sh").resolve().exists()

    # The team's mail lists the names as shown, never a path.
    [team] = [m for m in smtp_sink.wait_for(2) if m.rcpt_tos == [ERIN]]
    listed = team.message.get_body(("plain",)).get_content()
    assert "Attachments: mailbot-pwned, passwd, evil.bat" in listed
    assert "../" not in listed and "..\\" not in listed and "/etc/" not in listed


def nested(depth: int) -> bytes:
    """A multipart nested `depth` levels deep (reliability P1)."""
    level = 'Content-Type: multipart/mixed; boundary="n{0}"\r\n\r\n--n{0}\r\n'
    opening = "".join(level.format(i) for i in range(depth))
    closing = "".join(f"\r\n--n{i}--\r\n" for i in reversed(range(depth)))
    head = (
        f"From: {DANA}\r\nTo: {VISI}\r\nSubject: Deep\r\n"
        f"Message-ID: <deep{depth}@client.test>\r\nMIME-Version: 1.0\r\n"
    )
    return (head + opening + "Content-Type: text/plain\r\n\r\ndeep inside" + closing).encode()


def many_parts(count: int) -> bytes:
    """One multipart with `count` tiny parts (reliability P1, P6)."""
    parts = "".join(f"--m\r\nContent-Type: text/plain\r\n\r\n{i}\r\n" for i in range(count))
    return (
        f"From: {DANA}\r\nTo: {VISI}\r\nSubject: Parts\r\nMessage-ID: <parts@client.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
        f"{parts}--m--\r\n"
    ).encode()


def test_oversized_and_pathological_mail_is_quarantined_and_the_pass_goes_on(
    site, dovecot, mail_user, smtp_sink
):
    big = write_mail(DANA, VISI, "Full dump", "x" * 600_000)
    received = "".join(f"Received: from relay{i}.test by relay{i + 1}.test; hop {i}\r\n" for i in range(6000))
    # Keyed by what the reason must say: past the stdlib's recursion limit, past our own depth
    # cap of 32, and past our cap of 500 parts; the last two are far below the size limit.
    hostile = {
        "too large": big,
        "nested too deep": nested(1000),
        "nesting too deep": nested(40),
        "too many mime parts": many_parts(3000),
        "header section too large": received.encode() + write_mail(DANA, VISI, "Hops", "Many hops."),
    }
    assert all(len(raw) < 512 * 1024 for raw in list(hostile.values())[1:])
    uids = [dovecot.append(mail_user.name, write_mail(DANA, VISI, "Before", "First request."))]
    uids += [dovecot.append(mail_user.name, raw) for raw in hostile.values()]
    uids += [dovecot.append(mail_user.name, write_mail(DANA, VISI, "After", "Second request."))]

    site.poll()  # exits 0: a quarantined mail is handled, not a failure of the pass
    opened = sorted((t["reference"], t["subject"]) for t in site.tickets())
    assert opened == [("VISI-1", "Before"), ("VISI-2", "After")]
    quarantine = site.data_dir / "quarantine"
    kept = sorted(quarantine.glob("*.eml"))
    assert len(kept) == len(hostile) and len(list(quarantine.glob("*.reason"))) == len(hostile)
    assert sorted(p.read_bytes() for p in kept) == sorted(hostile.values())
    reasons = {p.read_bytes(): p.with_suffix(".reason").read_text() for p in kept}
    for what, raw in hostile.items():
        assert what in reasons[raw].lower(), reasons[raw]
        assert f"uid {uids[list(hostile).index(what) + 1]}" in reasons[raw]
    assert len([m for m in smtp_sink.wait_for(4) if m.rcpt_tos == [ERIN]]) == 2

    # Every mail was taken off the list of work; a second pass quarantines nothing again.
    for uid in uids:
        assert "$MailbotDone" in dovecot.flags(mail_user.name, uid)
    site.poll()
    assert len(list(quarantine.glob("*.eml"))) == len(hostile) and len(site.tickets()) == 2
