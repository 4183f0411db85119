"""Authentication: bearer extraction, keys, token verification, the authenticator."""
