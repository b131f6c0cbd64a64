"""Mail going out: queueing notifications (`notify`, `alerts`), what the outbox keeps (`drafts`),
rendering templates (`render`), building the MIME bytes (`compose`) and draining the outbox into a
`mailbot.transports.Transport` (`outbox`)."""
