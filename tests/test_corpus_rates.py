"""The rates `python -m bench.corpus_rates` prints meet their targets over the real-world corpus:
sisimai's bounces recognised as bounces and its auto-replies as automatic in at least 99 %, and
the reply bodies of three reply-parser projects trimmed as a person would expect in at least 90 %."""

from __future__ import annotations

import pytest

from bench import corpus_rates
from bench.corpus_rates import TARGETS, rates, trim_ok

pytestmark = pytest.mark.corpus


def test_machine_mail_and_quoted_history_are_recognised_at_the_target_rates(corpus_dir):
    found = rates(corpus_dir)
    print("\n" + "\n".join(f"{name}: {r.matched}/{r.total}" for name, r in found.items() if r is not None))
    for name, target in TARGETS.items():
        rate = found[name]
        assert rate is not None and rate.total > 0
        assert rate.share >= target, f"{name}: {rate.matched}/{rate.total}, missed {rate.misses}"
    assert found["bounces"].total > 300 and found["quote trimming"].total > 80


@pytest.mark.parametrize("trimmer", [lambda b: b, lambda b: b.split("\n")[0]], ids=["all", "first line"])
def test_the_trimming_check_fails_a_trimmer_that_keeps_the_history_or_drops_the_reply(trimmer, monkeypatch):
    """The check itself can fail: given a wrong trimmer in place of mailbot's, it says so."""
    body = "It works now.\nThanks a lot.\n\nOn Tue, 4 Jun 2024, Support <s@example.test> wrote:\n> Try 7.2\n"
    assert trim_ok(body)
    monkeypatch.setattr(corpus_rates, "visible_text", trimmer)
    assert not trim_ok(body)
