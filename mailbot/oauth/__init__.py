"""OAuth2 tokens for the mailboxes and the SMTP login (SASL XOAUTH2): the providers' flows
(`providers`), the token files with their lock (`store`) and the keeper that hands a source or a
transport a fresh access token, refreshing and storing a rotated refresh token before it is used
(`keeper`).

It knows nothing of mail: the sources and transports are handed a `TokenKeeper.access_token`
callable; the alert to the admin when a token is refused is `mailbot.service.health`'s business.
"""
