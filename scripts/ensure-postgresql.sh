# Sourced by scripts/test.sh and bench/run.sh: makes sure PostgreSQL's programs are installed (the
# tests and the benchmark start their own private cluster on a free loopback port, never the
# system's). Installs the Debian package postgresql when we are root and have apt-get; otherwise
# stops and says what to install.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "$0: PostgreSQL is needed and /usr/lib/postgresql/*/bin/initdb is missing; install the" \
         "Debian package postgresql as root: apt-get update && apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "$0: installing postgresql (a private cluster is started, never the system's)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq postgresql </dev/null >/dev/null
fi
