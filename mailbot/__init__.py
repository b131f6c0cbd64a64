"""mailbot: a support desk that lives in email."""

__version__ = "0.1.0"
