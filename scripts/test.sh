#!/usr/bin/env bash
# Run the test suite, on a developer's machine or in CI, from a fresh clone on Debian with
# Python 3.11+: makes .venv and installs mailbot with its test extra, installs Dovecot (the
# real IMAP server the integration tests start as a private instance) when it is missing and
# we are root, then runs pytest with the arguments given (e.g. scripts/test.sh -k imap -x).
# Then the fast tier (tests/fast) runs again on the newest Python found (3.12 or later, in
# .venv-newest), since the README promises 3.11 "and newer"; its failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
MAILBOT_EXTRAS='[test]'
source scripts/setup-venv.sh

source scripts/ensure-dovecot.sh
source scripts/ensure-postgresql.sh

# Lint and format first: a finding fails the run before the servers start.
.venv/bin/ruff check mailbot tests bench
.venv/bin/ruff format --check --quiet mailbot tests bench || {
  echo "test.sh: files above need 'ruff format mailbot tests bench'" >&2
  exit 1
}
.venv/bin/mypy  # configured in pyproject.toml: the package, checked against peewee's own stubs

# pytest "$@" with the Python of venv $1; exit code 5 (nothing collected) is a failure here.
run_pytest() {
  local venv=$1 status=0
  shift
  "$venv/bin/python" -m pytest "$@" </dev/null || status=$?
  if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests (exit code 5); that is a failure here." \
         "Check the paths and -k/-m options given: ${*:-(none)}" >&2
    return 1
  fi
  return "$status"
}

# The newest Python on this machine newer than 3.11 (on PATH or under pyenv), or nothing.
# Candidates are run, not trusted: a pyenv shim exists for versions it will not start.
newest_python() {
  local best="" best_version=311 candidate version
  for candidate in python3.14 python3.13 python3.12 "$HOME"/.pyenv/versions/*/bin/python3.1[2-9]; do
    version=$("$candidate" -c 'import sys; print("%d%02d" % sys.version_info[:2])' 2>/dev/null) || continue
    if [ "$version" -gt "$best_version" ]; then
      best=$(command -v "$candidate") best_version=$version
    fi
  done
  echo "$best"
}

status=0
run_pytest .venv "$@" || status=$?

newest=$(newest_python)
if [ -z "$newest" ]; then
  echo "test.sh: no Python newer than 3.11 found (python3.12+ on PATH or in ~/.pyenv); fast tier ran once"
else
  echo "test.sh: the fast tier on $("$newest" -V 2>&1) ($newest)"
  if [ ! -x .venv-newest/bin/python ] || ! cmp -s <(.venv-newest/bin/python -V 2>&1) <("$newest" -V 2>&1); then
    rm -rf .venv-newest
    "$newest" -m venv .venv-newest
    echo '*' >.venv-newest/.gitignore  # as Python 3.13's venv writes: git never sees it
  fi
  .venv-newest/bin/python -m pip install --quiet -e '.[test]'
  run_pytest .venv-newest tests/fast -q || status=$?
fi
exit "$status"
