"""From raw bytes to a parsed mail (`ParsedMail`): parsing, senders, charsets, machine mail and
bounces, sender authentication, the reply text. Pure: no database, no templates, no network; the
parse helper process (`mailbot.service.parse_ahead`) loads only this package and `mailbot.store.files`."""
