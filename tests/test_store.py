"""The file store keeps what it is given: the same bytes once, readable by mailbot's user
alone, never half a file under a real name, whatever a killed process left behind."""

from __future__ import annotations

import itertools
import os
import stat

from mailbot.store import files as store_module
from mailbot.store.files import Store, sha256_hex


def test_a_raw_mail_is_kept_once_by_its_hash_and_only_for_mailbots_user(tmp_path):
    store = Store(tmp_path / "data")
    raw = b"From: a@example.com\r\nSubject: Printer\r\n\r\nIt jams.\r\n"
    first = store.save_raw(raw)
    again = store.save_raw(raw, sha256_hex(raw))
    assert first == again == tmp_path / "data" / "raw" / sha256_hex(raw)[:2] / f"{sha256_hex(raw)}.eml"
    assert first.read_bytes() == raw
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert [p.name for p in first.parent.iterdir()] == [first.name], "no temporary file left over"


def test_a_temporary_file_left_by_a_killed_process_does_not_block_the_next(tmp_path, monkeypatch):
    store = Store(tmp_path / "data")
    payload = b"%PDF-1.7 an attachment"
    digest = sha256_hex(payload)
    folder = tmp_path / "data" / "attachments" / digest[:2]
    folder.mkdir(parents=True)
    monkeypatch.setattr(store_module, "_TEMP_NUMBERS", itertools.count())
    stale = folder / f".tmp-{os.getpid()}-0"  # what a killed process with our pid left half-written
    stale.write_bytes(b"%PDF-1.7 an att")
    _, path = store.save_attachment(payload)
    assert path.read_bytes() == payload
    assert not stale.exists()
