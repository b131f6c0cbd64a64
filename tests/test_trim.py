"""An engineer reading a ticket sees what the customer just wrote: not the quoted history, not
the signature, in whatever language the customer's mail client speaks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailbot.inbound import trim
from mailbot.inbound.parse import parse_mail
from mailbot.inbound.trim import REPLY_MARKERS, strip_reply_marker, visible_text

FIXTURES = Path(__file__).parent / "fixtures" / "mail"

QUOTED = "> Hello,\n>\n> please try build 7.2.1.\n>\n> VISI Support\n"


@pytest.mark.parametrize(
    "header",
    [
        "On Tue, 4 Jun 2024 at 17:00, VISI Support <support@visi.test> wrote:",
        "Am Di., 4. Juni 2024 um 17:00 Uhr schrieb VISI Support <support@visi.test>:",
        "Op di 4 jun. 2024 om 17:00 schreef VISI Support <support@visi.test>:",
        "Le mar. 4 juin 2024 à 17:00, VISI Support <support@visi.test> a écrit :",
        "W dniu 4.06.2024 o 17:00 VISI Support pisze:",  # a language nobody taught us
    ],
)
def test_quoted_history_under_a_quote_header_is_dropped(header):
    text = f"It works now, thank you!\n\nAlice\n\n{header}\n{QUOTED}"
    assert visible_text(text) == "It works now, thank you!\n\nAlice"


def test_an_outlook_reply_loses_the_header_block_and_everything_below():
    text = (
        "The licence server is back.\n\nJean\n\n________________________________\n"
        "From: VISI Support <support@visi.test>\nSent: Thursday, June 6, 2024 10:00 AM\n"
        "To: Jean <jean@client.example>\nSubject: [VISI-14] Licence server\n\nBonjour Jean,\n"
    )
    assert visible_text(text) == "The licence server is back.\n\nJean"


@pytest.mark.parametrize(
    "block",
    [
        "Von: VISI Support <support@visi.test>\nGesendet: Donnerstag, 6. Juni 2024 10:00\n"
        "An: Jean\nBetreff: Lizenz",
        "Van: VISI Support <support@visi.test>\nVerzonden: donderdag 6 juni 2024 10:00\n"
        "Aan: Jean\nOnderwerp: Licentie",
        "De : VISI Support <support@visi.test>\nEnvoyé : jeudi 6 juin 2024 10:00\nÀ : Jean\nObjet : Licence",
        "-----Original Message-----\nFrom: VISI Support\nSent: Thursday",
    ],
)
def test_outlook_header_blocks_in_other_languages(block):
    assert visible_text(f"Done.\n\n{block}\n\nOld text.") == "Done."


def test_a_signature_after_the_dash_dash_line_is_dropped():
    text = "Please reopen the ticket.\n\n-- \nAlice Martin\nCustomer Ltd | +32 2 555 01 01"
    assert visible_text(text) == "Please reopen the ticket."


def test_sent_from_my_phone_is_dropped():
    assert visible_text("Yes, go ahead.\n\nSent from my iPhone") == "Yes, go ahead."


def test_what_a_person_wrote_is_kept_as_written():
    text = (
        "Thanks, that worked. But now the import fails:\n\n"
        "    Traceback (most recent call last):\n      File 'x.py', line 1\n\n"
        "Best regards,\nAlice"
    )
    assert visible_text(text) == text


def test_a_reply_written_below_the_quote_is_found():
    text = f"On Tue, 4 Jun 2024, VISI Support <support@visi.test> wrote:\n{QUOTED}\nBuild 7.2.1 works."
    assert visible_text(text) == "Build 7.2.1 works."


def test_answers_between_quoted_lines_keep_the_answers():
    text = "> Which version?\n7.2\n> Which system?\nWindows 11\n"
    assert visible_text(text) == "7.2\nWindows 11"


def test_a_mail_that_is_all_quote_is_shown_whole():
    text = "On Tue, VISI Support wrote:\n> Hello\n> Bye"
    assert visible_text(text) == text
    assert visible_text("> only a quote") == "> only a quote"


def test_empty_text_stays_empty():
    assert visible_text("") == ""
    assert visible_text(" \n\r\n ") == ""


@pytest.mark.parametrize("marker", REPLY_MARKERS)
def test_everything_below_our_reply_marker_is_history(marker):
    text = f"#status resolved\nFixed.\n\n{marker}\n\nHello Alice,\nyour ticket VISI-12 ..."
    assert strip_reply_marker(text) == "#status resolved\nFixed."
    assert visible_text(text) == "#status resolved\nFixed."


def test_a_quoted_reply_marker_takes_its_quote_header_with_it():
    text = "Fixed.\n\nOn Tue, 4 Jun 2024, VISI Support wrote:\n> -- Reply above this line --\n> Hi"
    assert strip_reply_marker(text) == "Fixed."


def test_a_reply_marker_changed_by_the_mail_client_is_still_found():
    assert strip_reply_marker("Ok.\n\\-- Reply above this line --\nold") == "Ok."
    assert strip_reply_marker("Ok.\n\u2013 Antwoord boven deze regel \u2013\nold") == "Ok."
    assert strip_reply_marker("Ok.\n> Répondez au-dessus de cette ligne\nold") == "Ok."


def test_text_without_a_marker_is_unchanged():
    assert strip_reply_marker("Reply above this line, please.\nThanks") == (
        "Reply above this line, please.\nThanks"
    )


def test_our_markers_are_the_ones_our_mails_carry():
    render = pytest.importorskip("mailbot.outgoing.render")
    assert set(REPLY_MARKERS) == set(render.REPLY_MARKERS.values())


def test_the_reply_fixtures_show_only_the_new_text():
    reply = parse_mail((FIXTURES / "reply.eml").read_bytes())
    outlook = parse_mail((FIXTURES / "outlook_reply.eml").read_bytes())

    assert visible_text(reply.text) == ("Thanks, the new build works. You can close the ticket.\n\nAlice")
    assert visible_text(outlook.text) == (
        "#status resolved\nLe serveur redémarre correctement maintenant.\n\nJean"
    )


def test_long_lines_cannot_stall_the_trimmer():
    # The quote-header patterns backtrack; unbounded, this text took minutes.
    text = ("On " + "x " * 20000 + "\n") * 20 + "-- \n" * 1000
    started = time.monotonic()
    visible_text(text)
    assert time.monotonic() - started < 5


GATE_CASES = [
    "Thanks, that works.\n\nOn Mon, 2 Mar 2026 at 10:00, Support <s@example.com> wrote:\n> Try again",
    "Danke!\n\nAm 02.03.2026 um 10:00 schrieb Support <s@example.com>:\n> Bitte",
    "Merci.\n\nLe lun. 2 mars 2026 à 10:00, Support <s@example.com> a écrit :\n> Essayez",
    "Bedankt.\n\nOp ma 2 mrt. 2026 om 10:00 schreef Support <s@example.com>:\n> Probeer",
    "Done.\n\n________________________________\nFrom: Support <s@example.com>\nSent: Monday\nTo: A\n"
    "Subject: Re",
    "Done.\n\n> **From:** Support\n> **Sent:** Monday\n> **To:** A",
    "Tak.\nfoo -----Oprindelig meddelelse-----\nFra: Support\nSendt: mandag\nTil: A\nEmne: Re",
    "Tak.\n-----Oprindelig meddelelse-----\nFra: Support\nSendt: mandag\nTil: A\nEmne: Re",
    "See the log at 10:30:\n- step one -- two\nFrom: me\nno header here",
    "2026年3月2日(月) 10:00 Support <s@example.com>:\n> テスト",
    "-----Original Message-----\nFrom: Support\nSent: Monday",
    "",
    "just one line",
]


@pytest.mark.parametrize("text", GATE_CASES)
def test_the_gated_header_pattern_finds_what_the_librarys_own_finds(text):
    library = trim.library_header_regex()
    for candidate in (text, text.upper(), "\n" + text, text.replace("\n", "\n> ")):
        ours, theirs = trim._header_regex().search(candidate), library.search(candidate)
        assert (ours and ours.span()) == (theirs and theirs.span()), candidate


REPLIES = Path(__file__).parent / "fixtures" / "replies"
SHAPES = {
    # body written for these tests: the reply the person wrote above the history
    "android_wrapped_en.txt": "The licence server starts again, thank you.\n\nJean",
    "android_wrapped_ru.txt": "Сервер лицензий снова работает, спасибо.\n\nИван",
    "yahoo_dashes.txt": "Yes, build 7.2.1 works on all our machines.\n\nMaria",
    "outlook_ru.txt": "Обновление установлено, ошибка больше не появляется.\n\nС уважением,\nИван",
    "outlook_pl.txt": "Aktualizacja działa, dziękuję.\n\nAnna",
    "outlook_ja.txt": "アップデートで解決しました。ありがとうございます。\n\n山田",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_quoted_history_of_every_shape_is_cut_below_the_reply(name):
    assert visible_text((REPLIES / name).read_text(encoding="utf-8")) == SHAPES[name]


@pytest.mark.parametrize("language", sorted(trim.OUTLOOK_FIELDS))
def test_an_outlook_header_block_in_each_language_outlook_writes_starts_the_history(language):
    words = trim.OUTLOOK_FIELDS[language]
    block = "\n".join(f"{word.capitalize()}: value {n}" for n, word in enumerate(words[:4]))
    assert visible_text(f"Done, thanks.\n\n{block}\n\nThe old mail.") == "Done, thanks."


def test_an_html_reply_shows_no_rule_where_its_hr_stood():
    msg = parse_mail((REPLIES / "html_reply_hr.eml").read_bytes())
    assert "* * *" in msg.text, "html2text writes an <hr> so; the trimmer must take it as a separator"
    assert visible_text(msg.text) == "The licence server is back, thank you.\n\nJean"


def test_a_sent_from_my_phone_line_inside_the_text_is_what_the_person_wrote():
    text = (REPLIES / "sent_from_phone_middle.txt").read_text(encoding="utf-8")
    assert visible_text(text) == text.strip()
