#!/usr/bin/env bash
# The benchmark in one command, from a fresh clone on Debian with Python 3.11+:
#     bash bench/run.sh            # the full run (about 7 minutes on 2 cores)
#     bash bench/run.sh --quick    # a smoke run (about 2 minutes)
# Makes .venv with mailbot and its test extra (the benchmark starts its Dovecot and SMTP server
# with the test harness, tests/helpers/servers.py), installs Dovecot when it is missing and we are root,
# then runs `python -m bench` with the arguments given (`--help` lists them). The table goes to
# stdout, the figures to bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
MAILBOT_EXTRAS='[test]'
source scripts/setup-venv.sh

source scripts/ensure-dovecot.sh

exec .venv/bin/python -m bench "$@"
