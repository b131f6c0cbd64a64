"""`python -m bench`: mailbot's ingest against the raw floor, IDLE latency and peak memory, in one
run on this machine. Prints a table and writes the same figures as JSON (bench/results/latest.json).

    python -m bench            # the full run (about 7 minutes on 2 cores)
    python -m bench --quick    # a smoke run: fewer mails, one round

Every figure comes from child processes over a private Dovecot on loopback (tests/helpers/servers.py);
mailbot runs through its command line. Timings are medians over the rounds, and the ratio is
taken within each round (floor and mailbot back to back on the same mails), since the machine's
noise is larger than the differences that matter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cases, corpus
from bench.lab import Lab

TARGET_RATIO = 0.6
TARGET_LATENCY = 1.0
TARGET_FIRST_START_MB = 150
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 300 mails, one round, 2,000 mails for the first start, 20 for latency",
    )
    parser.add_argument("--mails", type=int, help="mails in the throughput corpus (2000)")
    parser.add_argument("--runs", type=int, help="rounds of floor + mailbot (3)")
    parser.add_argument("--first-start", type=int, help="small mails for the first-start memory case (20000)")
    parser.add_argument("--latency", type=int, help="mails for the IDLE latency case (30)")
    parser.add_argument(
        "--latency-interval",
        type=int,
        default=300,
        help="MAILBOT_POLL_INTERVAL of the daemon in the latency case (300: only IDLE brings mail)",
    )
    parser.add_argument("--big-mb", type=float, default=25, help="attachment size of the big mail, MB (25)")
    parser.add_argument(
        "--skip", default="", help="comma list of cases to leave out: throughput, latency, first-start, big"
    )
    parser.add_argument(
        "--tree",
        default="",
        help="run mailbot from this source tree instead of the installed one (to measure a proposed change)",
    )
    parser.add_argument(
        "--compare",
        default="",
        metavar="TREE",
        help="also run mailbot from this source "
        "tree in every round (and for the big mails), side by side with the installed one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (sites, logs) for a look")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    quick = args.quick
    args.mails = args.mails or (300 if quick else 2000)
    args.runs = args.runs or (1 if quick else 3)
    args.first_start = args.first_start or (2000 if quick else 20000)
    args.latency = args.latency or (20 if quick else 30)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pythonpath = str(Path(args.tree).resolve()) if args.tree else ""
    compare = str(Path(args.compare).resolve()) if args.compare else ""
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {k: (sorted(v) if isinstance(v, set) else str(v)) for k, v in vars(args).items()},
    }
    # SIGTERM (a timeout, a CI job cancelled) leaves through `with Lab` too, which stops Dovecot and
    # the SMTP sink; by default it would end Python without running any cleanup.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with Lab(keep=args.keep) as lab:
        results["workdir"] = str(lab.workdir)
        if "throughput" not in args.skip:
            results["throughput"] = throughput(lab, args.mails, args.runs, pythonpath, compare)
        if "latency" not in args.skip:
            _say(f"IDLE latency over {args.latency} mails")
            latency = cases.idle_latency(
                lab, args.latency, pythonpath=pythonpath, interval=args.latency_interval
            )
            latency.dovecot_idle = cases.dovecot_idle_delay(lab)
            results["latency"] = summarise_latency(latency)
        if "first-start" not in args.skip:
            results["first_start"] = first_start(lab, args.first_start, pythonpath)
        if "big" not in args.skip:
            results["big_mail"] = big_mails(lab, args.big_mb, pythonpath, compare)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_after"] = os.getloadavg()
    table = render_table(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


def throughput(lab: Lab, mails: int, runs: int, pythonpath: str, compare: str = "") -> dict:
    user = lab.new_user()
    _say(f"loading {mails} mails into Dovecot")
    lab.fill(user, (m.raw for m in corpus.generate(mails)))
    url = lab.dovecot.imap_url(user)
    rounds = []
    for number in range(1, runs + 1):
        _say(f"round {number}/{runs}: floor")
        fetch_wall, fetch = cases.floor_run(lab, url, "fetch")
        _, parse = cases.floor_run(lab, url, "parse")
        insert_wall, insert = cases.floor_run(lab, url, "insert")
        _say(f"round {number}/{runs}: mailbot poll --once")
        run = cases.ingest_run(lab, url, mails, pythonpath=pythonpath)
        rounds.append(
            {
                "floor_fetch": fetch_wall,
                "floor_fetch_inside": fetch["seconds"],
                "floor_parse": parse["seconds"],
                "floor_insert": insert_wall,
                "floor_insert_inside": insert["seconds"],
                "mailbot_to_last_commit": run.seconds_to_last_commit,
                "mailbot_total": run.seconds_total,
                "ratio": insert_wall / run.seconds_to_last_commit,
                "ratio_total": insert_wall / run.seconds_total,
                "peak_rss_mb": run.peak_rss_mb,
                "tickets": run.tickets,
                "outbox": run.outbox,
            }
        )
        _say(
            f"  floor {insert_wall:.2f} s, mailbot {run.seconds_to_last_commit:.2f} s to the last commit "
            f"({run.seconds_total:.2f} s in all), ratio {rounds[-1]['ratio']:.2f}"
        )
        if compare:
            _say(f"round {number}/{runs}: mailbot poll --once from {compare}")
            other = cases.ingest_run(lab, url, mails, pythonpath=compare)
            rounds[-1].update(
                {
                    "compared_to_last_commit": other.seconds_to_last_commit,
                    "compared_total": other.seconds_total,
                    "compared_ratio": insert_wall / other.seconds_to_last_commit,
                    "compared_ratio_total": insert_wall / other.seconds_total,
                    "compared_peak_rss_mb": other.peak_rss_mb,
                }
            )
            _say(
                f"  compared: {other.seconds_to_last_commit:.2f} s to the last commit "
                f"({other.seconds_total:.2f} s in all), ratio {rounds[-1]['compared_ratio']:.2f}"
            )
    medians = {key: cases.median([r[key] for r in rounds]) for key in rounds[0]}
    return {"mails": mails, "runs": runs, "median": medians, "rounds": rounds}


def first_start(lab: Lab, mails: int, pythonpath: str) -> dict:
    user = lab.new_user()
    _say(f"loading {mails} small mails for the first start")
    lab.fill(user, (m.raw for m in corpus.generate(mails, seed=20, attachments=False, tag="f")))
    _say(
        f"first start: poll --once over {mails} mails (mail older than the cut-over is recorded, "
        "not answered)"
    )
    run = cases.ingest_run(
        lab, lab.dovecot.imap_url(user), mails, pythonpath=pythonpath, cutover="", sample_every=1.0
    )
    return {
        "mails": mails,
        "seconds": run.seconds_total,
        "to_last_commit": run.seconds_to_last_commit,
        "peak_rss_mb": run.peak_rss_mb,
        "rss_growth": cases.rss_growth(run.rss_samples),
        "rss_samples": run.rss_samples,
    }


def big_mails(lab: Lab, megabytes: float, pythonpath: str, compare: str = "") -> list[dict]:
    """One mail of `megabytes` as sent (the largest MAILBOT_MAX_MESSAGE_SIZE lets in by default,
    for the default 25), and one with an attachment of that size (base64 makes the mail 1.37
    times bigger; the size limit is raised for it)."""
    size = int(megabytes * 1_000_000)
    attachment_for_mail = int((size - 2000) / 1.3686)  # base64 in 76-character lines, CRLF
    found = []
    for what, attachment in (("mail", attachment_for_mail), ("attachment", size)):
        raw = corpus.big_mail(attachment)
        user = lab.new_user()
        lab.fill(user, [raw])
        _say(f"one mail of {len(raw) / 1e6:.1f} MB with a {attachment / 1e6:.1f} MB attachment")
        # The 25 MB mail passes the default size limit (25M, 26.2 MB); the other needs it raised.
        limit = {} if what == "mail" else {"max_message_size": f"{len(raw) // 1_000_000 + 10}M"}
        run = cases.ingest_run(
            lab, lab.dovecot.imap_url(user), 1, pythonpath=pythonpath, sample_every=0.2, **limit
        )
        found.append(
            {
                "case": what,
                "raw_mb": len(raw) / 1e6,
                "attachment_mb": attachment / 1e6,
                "seconds": run.seconds_total,
                "peak_rss_mb": run.peak_rss_mb,
                "target_mb": 4 * megabytes + 60,
            }
        )
        if compare:
            other = cases.ingest_run(
                lab, lab.dovecot.imap_url(user), 1, pythonpath=compare, sample_every=0.2, **limit
            )
            found[-1]["compared_peak_rss_mb"] = other.peak_rss_mb
        del raw
    return found


def summarise_latency(latency: cases.Latency) -> dict:
    return {
        "mails": latency.mails,
        "commit_median": cases.median(latency.to_commit),
        "commit_p95": cases.percentile(latency.to_commit, 0.95),
        "ack_median": cases.median(latency.to_ack),
        "ack_p95": cases.percentile(latency.to_ack, 0.95),
        "daemon_peak_rss_mb": latency.daemon_peak_rss_mb,
        "dovecot_idle_median": cases.median(latency.dovecot_idle),
        "to_commit": latency.to_commit,
        "to_ack": latency.to_ack,
    }


def render_table(results: dict) -> str:
    rows: list[tuple[str, str, str, str]] = []
    tp = results.get("throughput")
    if tp:
        m, n = tp["median"], tp["mails"]
        rows += [
            ("1 floor: UID FETCH of all mails", _secs(m["floor_fetch"], n), "", ""),
            ("  floor: mail-parser parsing them", _secs(m["floor_parse"], n), "", ""),
            ("  floor: fetch + parse + SQLite insert", _secs(m["floor_insert"], n), "", ""),
            ("2 mailbot poll --once: to the last commit", _secs(m["mailbot_to_last_commit"], n), "", ""),
            (
                "  ... and SLA jobs, sending the outbox",
                _secs(m["mailbot_total"], n),
                f"{m['outbox']:.0f} mails sent",
                "",
            ),
            (
                "3 ratio: mailbot / floor throughput",
                f"{m['ratio']:.2f}",
                ">= 0.6",
                _verdict(m["ratio"] >= TARGET_RATIO),
            ),
            ("  ratio with jobs and outbox", f"{m['ratio_total']:.2f}", "", ""),
        ]
        if "compared_ratio" in m:
            rows += [
                ("2' the compared tree: to the last commit", _secs(m["compared_to_last_commit"], n), "", ""),
                ("  ... and SLA jobs, sending the outbox", _secs(m["compared_total"], n), "", ""),
                (
                    "3' ratio, compared tree",
                    f"{m['compared_ratio']:.2f}",
                    ">= 0.6",
                    _verdict(m["compared_ratio"] >= TARGET_RATIO),
                ),
                ("  ratio with jobs and outbox, compared tree", f"{m['compared_ratio_total']:.2f}", "", ""),
            ]
    lat = results.get("latency")
    if lat:
        rows += [
            (
                f"4 IDLE: new mail to committed ticket (n={lat['mails']})",
                f"{lat['commit_median']:.3f} / {lat['commit_p95']:.3f} s",
                "median <= 1 s",
                _verdict(lat["commit_median"] <= TARGET_LATENCY),
            ),
            (
                "  IDLE: new mail to ack at the SMTP server",
                f"{lat['ack_median']:.3f} / {lat['ack_p95']:.3f} s",
                "",
                "",
            ),
            (
                "  (Dovecot alone: APPEND to IDLE's EXISTS)",
                f"{lat['dovecot_idle_median']:.3f} s",
                "median",
                "",
            ),
        ]
    if tp:
        rows.append(
            (f"5 peak RSS: {tp['mails']}-mail poll --once", f"{tp['median']['peak_rss_mb']:.0f} MB", "", "")
        )
    fs = results.get("first_start")
    if fs:
        growth = fs["rss_growth"]
        grow = (
            (
                f"RSS {growth['rss_mb']:.0f} MB at {growth['at_mails']}, {growth['end_rss_mb']:.0f} MB at "
                f"{growth['end_mails']}"
            )
            if growth
            else ""
        )
        rows.append(
            (
                f"  peak RSS: first start, {fs['mails']} small mails",
                f"{fs['peak_rss_mb']:.0f} MB",
                f"<= {TARGET_FIRST_START_MB} MB",
                _verdict(fs["peak_rss_mb"] <= TARGET_FIRST_START_MB),
            )
        )
        rows.append(("    (time; RSS along the way)", _secs(fs["seconds"], fs["mails"]), grow, ""))
    for big in results.get("big_mail", []):
        label = (
            f"one {big['raw_mb']:.0f} MB mail"
            if big["case"] == "mail"
            else f"one mail, {big['attachment_mb']:.0f} MB attachment ({big['raw_mb']:.0f} MB)"
        )
        rows.append(
            (
                f"  peak RSS: {label}",
                f"{big['peak_rss_mb']:.0f} MB",
                f"<= {big['target_mb']:.0f} MB",
                _verdict(big["peak_rss_mb"] <= big["target_mb"]),
            )
        )
        if "compared_peak_rss_mb" in big:
            rows.append(
                (
                    "    the same, compared tree",
                    f"{big['compared_peak_rss_mb']:.0f} MB",
                    "",
                    _verdict(big["compared_peak_rss_mb"] <= big["target_mb"]),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = (
        f"mailbot benchmark, {results['started']}, {results['machine']['cpus']} CPUs, "
        f"load {results['machine']['load_before'][0]:.1f}; medians of "
        f"{tp['runs'] if tp else 1} round(s); latency as median / p95"
    )
    lines = [head, ""]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines)


def _secs(seconds: float, mails: int) -> str:
    return f"{seconds:7.2f} s  {mails / seconds:6.0f} mails/s"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _machine() -> dict:
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "load_before": os.getloadavg(),
    }


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
