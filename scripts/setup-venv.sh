# Sourced by scripts/demo.sh and scripts/test.sh: a virtualenv in .venv with mailbot installed.
# Needs only Python 3.11 or newer with venv (Debian: python3 python3-venv).
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mailbot needs Python 3.11 or newer as '$python' (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || {
    echo "could not create .venv: install the venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
extra=${MAILBOT_EXTRAS:-}
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
