"""Reading `Authentication-Results` (RFC 8601): did our own mail server see the sender pass?

Pure functions on header values. `parse_authentication_results` reads one header value into an
`AuthResults` (the authserv-id and each method's result with its properties), or None when the
value is not one. `sender_verified` answers the one question mailbot asks: does the topmost
header written by the trusted server (its authserv-id named in MAILBOT_TRUSTED_AUTHSERV_ID) show
that the mail really comes from the domain in its From?

Headers with any other authserv-id are ignored: anyone can write an `Authentication-Results`
line into the mail they send, and only our own server's verdict counts (RFC 8601 section 5).
Where our server writes, and only there, is looked at: the block at the top of the header,
above the first `Received` line. Everything below that line came with the mail from outside,
so a header with our id down there was written by the sender, whatever it says. `Received`
lines of the final delivery into the mailbox (`with LMTP`, LMTPA, LMTPS, LMTPSA: RFC 3848), added
inside our site after the border server, do not end the block. Within it the topmost header
with our id counts (the one added last). RFC 8601 section 2.1 has these headers prepended, as
trace fields; a server that inserts them below its own `Received` line (OpenDKIM and OpenDMARC
under Postfix do) is not seen: its mail counts as carrying none, which fails safe.
`sender_verdict` tells that case ("missing") from a header that shows a failure ("fail").

The verdict: where the trusted header has a `dmarc` result, it decides (`pass` or nothing). Where
it has none, a `dkim=pass` whose `header.d` is the From domain or a parent of it, or an
`spf=pass` whose `smtp.mailfrom` domain is, will do (DMARC's relaxed alignment, without the
public-suffix list: a parent domain signs for its subdomains, never the other way round).

Hand-written: the one package on PyPI that only parses these headers (`authres`) has not had a
release since 2019, and `authheaders` brings DKIM, DNS and a public-suffix list we do not use.
What it leaves to others: which mails need the answer, and what happens then (`mailbot.desk.replies`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

HEADER = "authentication-results"
PASS, FAIL, MISSING = "pass", "fail", "missing"
# A Received line of the final delivery into the mail store (RFC 3848 protocol names).
_DELIVERY_HOP = re.compile(r"\swith\s+LMTP(S|A|SA)?\b", re.IGNORECASE)
_SPECIALS = frozenset(';="(')


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` of a header, e.g. dkim=pass header.d=example.com. Names are
    lower-case; `properties` maps `ptype.property` (e.g. `header.d`) to its value."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    def prop(self, name: str) -> str:
        """The value of property `name` (e.g. "smtp.mailfrom"), "" when absent."""
        return next((value for key, value in self.properties if key == name.lower()), "")


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...] = ()

    def of(self, method: str) -> tuple[MethodResult, ...]:
        return tuple(r for r in self.results if r.method == method)


def parse_authentication_results(value: str) -> AuthResults | None:
    """One header value, e.g. `mx.example.net; dkim=pass header.d=example.com; spf=fail ...`.
    Comments are dropped, quoted strings unquoted. None when there is no authserv-id; a
    `method=result` clause that cannot be read is left out, never guessed at."""
    tokens = _tokens(value)
    if tokens is None:
        return None
    clauses: list[list[str]] = [[]]
    for token in tokens:
        if token == ";":
            clauses.append([])
        else:
            clauses[-1].append(token)
    head = clauses[0]
    # The authserv-id, then an optional version number (RFC 8601 section 2.2); some servers
    # write more there, which is not a result and is left out.
    if not head or head[0] == "=":
        return None
    results = tuple(r for r in map(_method_result, clauses[1:]) if r is not None)
    return AuthResults(authserv_id=head[0].strip().lower(), results=results)


def sender_verified(headers: Iterable[tuple[str, str]], trusted_authserv_id: str, from_domain: str) -> bool:
    """Whether `sender_verdict` is PASS."""
    return sender_verdict(headers, trusted_authserv_id, from_domain) == PASS


def sender_verdict(headers: Iterable[tuple[str, str]], trusted_authserv_id: str, from_domain: str) -> str:
    """What the trusted server's own `Authentication-Results` among `headers` (name, value pairs
    in the mail's order, top first) say about the mail coming from `from_domain`: PASS (dmarc=pass,
    or without a dmarc result an aligned dkim=pass or spf=pass), FAIL, or MISSING when that
    server wrote no header where it writes them (`server_results`)."""
    trusted = trusted_authserv_id.strip().lower()
    domain = _domain(from_domain)
    ours = server_results(headers, trusted) if trusted else None
    if ours is None:
        return MISSING
    if not domain:
        return FAIL
    dmarc = ours.of("dmarc")
    if dmarc:
        passed = all(r.result == "pass" and _from_matches(r, domain) for r in dmarc)
    else:
        dkim = any(r.result == "pass" and _aligned(r.prop("header.d"), domain) for r in ours.of("dkim"))
        spf = any(r.result == "pass" and _aligned(r.prop("smtp.mailfrom"), domain) for r in ours.of("spf"))
        passed = dkim or spf
    return PASS if passed else FAIL


def server_results(headers: Iterable[tuple[str, str]], trusted_authserv_id: str) -> AuthResults | None:
    """The topmost header of `trusted_authserv_id` in the block our servers write: above the first
    `Received` line that is not a final delivery hop (see the module docstring); None when there
    is none there."""
    trusted = trusted_authserv_id.strip().lower()
    for name, value in headers:
        key = name.strip().lower()
        if key == "received":
            if _DELIVERY_HOP.search(" " + value):
                continue
            return None  # below here, the mail came from outside
        if key != HEADER:
            continue
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id == trusted:
            return parsed
    return None


def _from_matches(result: MethodResult, domain: str) -> bool:
    """A dmarc result about another From domain (`header.from`) is not about this mail."""
    named = result.prop("header.from")
    return not named or _domain(named) == domain


def _aligned(identifier: str, domain: str) -> bool:
    """`identifier` (a domain, or local@domain) is `domain` or a parent domain of it."""
    other = _domain(identifier)
    return bool(other) and (other == domain or domain.endswith("." + other))


def _domain(value: str) -> str:
    domain = value.strip().rpartition("@")[2].strip().rstrip(".").lower()
    # A bare top-level label ("com") would align with every domain under it.
    return domain if "." in domain and " " not in domain else ""


def _method_result(clause: list[str]) -> MethodResult | None:
    """`method[/version] = result [reason = value] [ptype.property = value ...]`."""
    if len(clause) < 3 or clause[1] != "=" or "=" in (clause[0], clause[2]):
        return None
    method = clause[0].split("/", 1)[0].strip().lower()
    result, reason = clause[2].lower(), ""
    properties = []
    rest = clause[3:]
    while len(rest) >= 3 and rest[1] == "=" and "=" not in (rest[0], rest[2]):
        key, value = rest[0].lower(), rest[2]
        if key == "reason":
            reason = value
        elif "." in key:
            properties.append((key, value))
        rest = rest[3:]
    if not method or not result:
        return None
    return MethodResult(method, result, tuple(properties), reason)


def _tokens(value: str) -> list[str] | None:
    """Words, quoted strings (unquoted), ";" and "="; comments and folding white space
    dropped. None for an unterminated quoted string or comment."""
    tokens: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        ch = value[pos]
        if ch.isspace():
            pos += 1
        elif ch in ";=":
            tokens.append(ch)
            pos += 1
        elif ch == "(":
            pos = _skip_comment(value, pos)
            if pos < 0:
                return None
        elif ch == '"':
            word, pos = _quoted(value, pos)
            if pos < 0:
                return None
            tokens.append(word)
        else:
            start = pos
            while pos < end and not value[pos].isspace() and value[pos] not in _SPECIALS:
                pos += 1
            tokens.append(value[start:pos])
    return tokens


def _skip_comment(value: str, pos: int) -> int:
    """Position after the (nested) comment starting at `pos`; -1 when it never ends."""
    depth = 0
    while pos < len(value):
        ch = value[pos]
        if ch == "\\":
            pos += 2
            continue
        depth += (ch == "(") - (ch == ")")
        pos += 1
        if depth == 0:
            return pos
    return -1


def _quoted(value: str, pos: int) -> tuple[str, int]:
    out = []
    pos += 1
    while pos < len(value):
        ch = value[pos]
        if ch == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    return "", -1
