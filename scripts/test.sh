#!/usr/bin/env bash
# Run the test suite, on a developer's machine or in CI, from a fresh clone on Debian with
# Python 3.11+: makes .venv and installs mailbot with its test extra, installs Dovecot (the
# real IMAP server the integration tests start as a private instance) when it is missing and
# we are root, then runs pytest with the arguments given (e.g. scripts/test.sh -k imap -x).
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
MAILBOT_EXTRAS='[test]'
source scripts/setup-venv.sh

source scripts/ensure-dovecot.sh

# Lint and format first: a finding fails the run before the servers start.
.venv/bin/ruff check mailbot tests bench
.venv/bin/ruff format --check --quiet mailbot tests bench || {
  echo "test.sh: files above need 'ruff format mailbot tests bench'" >&2
  exit 1
}

status=0
.venv/bin/python -m pytest "$@" </dev/null || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests (exit code 5); that is a failure here." \
       "Check the paths and -k/-m options given: ${*:-(none)}" >&2
  exit 1
fi
exit "$status"
