"""Where mail comes from: IMAP mailboxes, local Maildirs, files or stdin, behind one interface."""
