"""E-mail of notifications and digests: render, sign unsubscribe links, send once, retry."""
