"""Reading Authentication-Results (RFC 8601) as our own mail server writes it, and refusing
the copies a forger writes into the mail he sends (reliability S1). Pure: no servers."""

from __future__ import annotations

import pytest

from mailbot.inbound.authresults import (
    FAIL,
    MISSING,
    PASS,
    parse_authentication_results,
    sender_verdict,
    sender_verified,
)

OURS = "mx.produsoft.test"
AR = "Authentication-Results"


def test_a_typical_header_is_read_with_its_properties():
    parsed = parse_authentication_results(
        "mx.produsoft.test 1; dkim=pass (2048-bit key; secure) header.d=produsoft.test header.s=sel1"
        ' header.b="AbC/12+x"; spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=erin@produsoft.test;'
        " dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=produsoft.test"
    )
    assert parsed is not None and parsed.authserv_id == OURS
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert parsed.of("dkim")[0].prop("header.d") == "produsoft.test"
    assert parsed.of("dkim")[0].prop("header.b") == "AbC/12+x"
    assert parsed.of("spf")[0].prop("smtp.mailfrom") == "erin@produsoft.test"


@pytest.mark.parametrize(
    "value",
    ["", "   ", "; dkim=pass", "= x", 'mx "unterminated; dkim=pass', "mx (unterminated comment; dkim=pass"],
)
def test_what_is_not_a_header_value_is_none(value):
    assert parse_authentication_results(value) is None


def test_none_and_odd_clauses_give_no_results_and_never_a_guess():
    assert parse_authentication_results("mx.produsoft.test; none").results == ()
    parsed = parse_authentication_results(
        'MX.Produsoft.TEST; dkim; =pass; DKIM/1 = PASS reason="ok" header.d=x.test'
    )
    assert parsed is not None and parsed.authserv_id == OURS
    [only] = parsed.results
    assert (only.method, only.result, only.reason, only.prop("header.d")) == ("dkim", "pass", "ok", "x.test")


BORDER = ("Received", "from mail.evil.test ([203.0.113.9]) by mx.produsoft.test with ESMTPS id 1")
DELIVERY = ("Received", "from mx.produsoft.test by imap.produsoft.test (Dovecot) with LMTP id 2")


def headers(*values: str) -> list[tuple[str, str]]:
    """Our server's headers on top, above its own Received line."""
    return [*((AR, v) for v in values), BORDER, ("From", "erin@produsoft.test")]


@pytest.mark.parametrize(
    ("values", "verified"),
    [
        ([f"{OURS}; dmarc=pass header.from=produsoft.test"], True),
        ([f"{OURS}; dmarc=fail header.from=produsoft.test; dkim=pass header.d=produsoft.test"], False),
        ([f"{OURS}; dmarc=pass header.from=evil.test"], False),
        ([f"{OURS}; dmarc=none; spf=pass smtp.mailfrom=produsoft.test"], False),
        ([f"{OURS}; dkim=pass header.d=produsoft.test"], True),
        # A subdomain never vouches for its parent, a bare top-level label for nothing.
        ([f"{OURS}; dkim=pass header.d=mail.produsoft.test"], False),
        ([f"{OURS}; dkim=pass header.d=evil.test; dkim=fail header.d=produsoft.test"], False),
        ([f"{OURS}; dkim=pass header.d=test"], False),
        ([f"{OURS}; spf=pass smtp.mailfrom=bounce@produsoft.test"], True),
        ([f"{OURS}; spf=softfail smtp.mailfrom=produsoft.test"], False),
        ([f"{OURS}; none"], False),
        ([], False),
        # A forged header with another id says pass; ours, on top, says fail.
        ([f"{OURS}; dmarc=fail header.from=produsoft.test", "mx.evil.test; dmarc=pass"], False),
        # Only a forged copy with another id: nothing of ours, nothing trusted.
        (["mx.evil.test; dmarc=pass header.from=produsoft.test"], False),
        # Our server's header on top says fail; the forger's copy with our id below says pass.
        ([f"{OURS}; dmarc=fail", f"{OURS}; dmarc=pass header.from=produsoft.test"], False),
        # And the other way round: the topmost of ours counts.
        ([f"{OURS}; dmarc=pass", f"{OURS}; dmarc=fail"], True),
    ],
)
def test_only_the_topmost_header_of_the_trusted_server_counts(values, verified):
    assert sender_verified(headers(*values), OURS, "produsoft.test") is verified


def test_the_from_domain_may_be_a_subdomain_of_the_signer_and_case_does_not_matter():
    found = headers(f"{OURS.upper()}; DKIM=Pass header.d=Produsoft.Test")
    assert sender_verified(found, OURS, "support.PRODUSOFT.test")
    assert sender_verified(found, OURS.upper(), "produsoft.test")


def test_nothing_is_verified_without_a_trusted_id_or_a_from_domain():
    found = headers(f"{OURS}; dmarc=pass")
    assert not sender_verified(found, "", "produsoft.test")
    assert not sender_verified(found, OURS, "")
    assert not sender_verified(found, "mx.other.test", "produsoft.test")


PASSING = f"{OURS}; dmarc=pass header.from=produsoft.test"


@pytest.mark.parametrize(
    ("found", "verdict"),
    [
        ([(AR, PASSING), BORDER], PASS),
        # The final delivery's Received line (LMTP) is ours, added after the border: it ends nothing.
        ([DELIVERY, (AR, PASSING), BORDER], PASS),
        # Below the border's Received line everything came from outside: the sender wrote it.
        ([BORDER, (AR, PASSING)], MISSING),
        ([DELIVERY, BORDER, ("Received", "from pc by mail.evil.test with ESMTP"), (AR, PASSING)], MISSING),
        # A Received line above ours that is no delivery hop (a relay after us we do not know).
        ([("Received", "from x by relay.test with ESMTP"), (AR, PASSING), BORDER], MISSING),
        ([(AR, f"{OURS}; dmarc=fail header.from=produsoft.test"), BORDER, (AR, PASSING)], FAIL),
        ([(AR, "mx.evil.test; dmarc=pass header.from=produsoft.test"), BORDER], MISSING),
        ([BORDER], MISSING),
    ],
)
def test_only_the_block_above_the_border_received_line_is_our_servers(found, verdict):
    assert sender_verdict(found, OURS, "produsoft.test") == verdict
