#!/usr/bin/env bash
# The benchmark in one command, from a fresh clone on Debian with Python 3.11+:
#     bash bench/run.sh            # the full run (about 10 minutes on 2 cores)
#     bash bench/run.sh --quick    # a smoke run (about 2 minutes)
# Makes .venv with mailbot and its test extra (the benchmark starts its Dovecot and SMTP server
# with the test harness, tests/servers.py), installs Dovecot when it is missing and we are root,
# then runs `python -m bench` with the arguments given (`--help` lists them). The table goes to
# stdout, the figures to bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
MAILBOT_EXTRAS='[test]'
source scripts/setup-venv.sh

dovecot=/usr/sbin/dovecot
if [ ! -x "$dovecot" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "bench/run.sh: the benchmark needs Dovecot ($dovecot is missing); install the Debian" \
         "package dovecot-imapd as root: apt-get update && apt-get install -y dovecot-imapd" >&2
    exit 1
  fi
  echo "bench/run.sh: installing dovecot-imapd (the benchmark runs its own private instance)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq dovecot-imapd </dev/null >/dev/null
fi

exec .venv/bin/python -m bench "$@"
