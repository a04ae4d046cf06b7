"""Endpoint signing secrets: made here, shown once, kept Fernet-encrypted at rest.

The database alone does not reveal them: the key lives in a file beside the service
(`webhook_secret_key_file`, mode 0600, created on first use), as the JWT key does.
"""

import base64
import os
import secrets
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes


def new_secret() -> str:
    """A fresh `whsec_<base64>` secret, as `standardwebhooks.Webhook` reads it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@cache
def _fernet(key_file: Path) -> Fernet:
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile
        else:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
    return Fernet(key_file.read_bytes().strip())


def seal(secret: str, *, key_file: Path) -> str:
    return _fernet(key_file).encrypt(secret.encode()).decode()


def unseal(sealed: str, *, key_file: Path) -> str:
    return _fernet(key_file).decrypt(sealed.encode()).decode()
