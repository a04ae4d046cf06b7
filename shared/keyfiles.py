"""Secret keys kept in files: created on first use, shared by every replica."""

import contextlib
import os
import secrets
from pathlib import Path


def load_or_create_key(path: Path) -> bytes:
    """The signing key, created (0600) on first use; replicas racing to create it agree."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    # link() fails if another process created the key first: then theirs is the key.
    with contextlib.suppress(FileExistsError):
        os.link(scratch, path)
    scratch.unlink()
    return path.read_bytes().strip()
