"""The process wiring: the daemon and its workers, a poll pass over a mailbox, ingesting one mail
in the order of its guarantee, and the helper process that parses ahead. Sits at the edge with
the CLI and calls inward. Kept empty here: the parse helper imports `service.parse_ahead` only."""
