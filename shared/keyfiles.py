"""Files written atomically (keys, stored e-mail): created on first use, shared by every replica."""

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _scratch_file(path: Path, data: bytes, *, mode: int) -> Iterator[Path]:
    """`data` in a file of its own beside `path`, flushed to disk; removed afterwards.

    The name is unique per call (not per process), so threads of one process that write
    the same file at once never share a scratch file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    scratch = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:  # closes the descriptor whatever happens
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace `path` with `data`: a reader sees the old file or the new one, never a part."""
    with _scratch_file(path, data, mode=mode) as scratch:
        os.replace(scratch, path)


def create_once(path: Path, data: bytes, *, mode: int) -> bytes:
    """Create `path` with `data` unless it exists; what the file holds afterwards.

    link() fails if another writer created the file first: then theirs stands, and every
    writer that raced returns the same content.
    """
    if not path.exists():
        with (
            _scratch_file(path, data, mode=mode) as scratch,
            contextlib.suppress(FileExistsError),
        ):
            os.link(scratch, path)
    return path.read_bytes()


def load_or_create_key(path: Path) -> bytes:
    """The signing key, created (0600) on first use; replicas and threads racing to create it agree."""
    return create_once(path, secrets.token_hex(32).encode(), mode=0o600).strip()
