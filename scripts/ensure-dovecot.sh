# Sourced by scripts/test.sh and bench/run.sh: makes sure Dovecot's IMAP server is installed (the
# tests and the benchmark start their own private instance). Installs the Debian package
# dovecot-imapd when we are root and have apt-get; otherwise stops and says what to install.
dovecot=/usr/sbin/dovecot
if [ ! -x "$dovecot" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "$0: Dovecot is needed and $dovecot is missing; install the Debian package" \
         "dovecot-imapd as root: apt-get update && apt-get install -y dovecot-imapd" >&2
    exit 1
  fi
  echo "$0: installing dovecot-imapd (a private instance is started, never the system's)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq dovecot-imapd </dev/null >/dev/null
fi
