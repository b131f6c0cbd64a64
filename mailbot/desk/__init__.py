"""The ticket domain: what a parsed mail means for the tickets (`intake`, `replies`, `commands`),
the tickets, accounts, credit and limits themselves, and the promises kept by the clock (`jobs`).
Knows nothing of IMAP, SMTP, the scheduler or the command line."""
