#!/usr/bin/env bash
# Set everything up and run the daemon on the embedded default: SQLite, a Maildir per product
# under ./var/demo, outgoing mail written to the Maildir ./var/demo/outbox. No mail server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-venv.sh

if [ ! -f demo.env ]; then
  cat > demo.env <<ENV
MAILBOT_DATA_DIR=./var/demo
MAILBOT_POLL_INTERVAL=3
MAILBOT_OUTBOX_INTERVAL=3
MAILBOT_PRODUCTS=DEMO
MAILBOT_PRODUCT_DEMO_ADDRESS=support@demo.example
MAILBOT_PRODUCT_DEMO_NAME=DEMO
MAILBOT_PRODUCT_DEMO_UNKNOWN_SENDERS=open
ENV
  echo "wrote demo.env"
fi
mailbot=".venv/bin/mailbot --env-file demo.env"
$mailbot db init
$mailbot account add engineer@demo.example --name "Erin Engineer" --product DEMO --role engineer >/dev/null
mkdir -p var/demo/maildirs/DEMO/{new,cur,tmp}
cat <<TXT

mailbot runs on the embedded default. In another terminal:
  cp examples/customer-mail.eml var/demo/maildirs/DEMO/new/      # a customer writes
  $mailbot ticket list                                  # the ticket DEMO-1
  ls var/demo/outbox/new/                                        # the acknowledgement and the engineer's mail
Stop with Ctrl-C.

TXT
exec $mailbot run
