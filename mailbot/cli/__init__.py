"""The `mailbot` command line (`mailbot.cli.main`) and its subcommands, one module per noun:
accounts, products, tickets, report (and credit), outbox, quarantine, status. `mailbot.cli.app` holds what
they share."""

from mailbot.cli.main import main

__all__ = ["main"]
