"""Password hashing with a bound on how many argon2 runs at once.

Each argon2id hash or verify holds 64 MiB (RFC 9106 low-memory profile) for its duration,
and sync routes run in a thread pool of 40: twelve concurrent logins took identity from
131 to 900 MiB. So at most `concurrency` hashes run at once (2: the cores there are), a
few more wait briefly, and the rest are refused with 503 and Retry-After at once.
"""

import threading

from argon2 import PasswordHasher

from shared.errors import Unavailable


class PasswordHashingBusy(Unavailable):
    """Too many password hashes running or waiting: try again shortly (503)."""


class BoundedHasher:
    """argon2's PasswordHasher behind a semaphore and a short, bounded queue."""

    def __init__(
        self, hasher: PasswordHasher, *, concurrency: int = 2, queue: int = 16, wait: float = 5.0
    ) -> None:
        self.hasher = hasher
        self.configure(concurrency=concurrency, queue=queue, wait=wait)

    def configure(self, *, concurrency: int, queue: int, wait: float) -> None:
        """Resize the bound (identity's start-up applies its settings)."""
        self.concurrency = concurrency
        self.queue = queue
        self.wait = wait
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting

    def hash(self, password: str) -> str:
        with self._slot():
            return self.hasher.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        with self._slot():
            return self.hasher.verify(hash, password)

    def _slot(self) -> "_Slot":
        with self._lock:
            if self._admitted >= self.concurrency + self.queue:
                raise PasswordHashingBusy("too many sign-ins at once; try again shortly")
            self._admitted += 1
        return _Slot(self)

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1


class _Slot:
    def __init__(self, owner: BoundedHasher) -> None:
        self.owner = owner
        self.slots = owner._slots
        self.acquired = False

    def __enter__(self) -> None:
        self.acquired = self.slots.acquire(timeout=self.owner.wait)
        if not self.acquired:
            self.owner._leave()
            raise PasswordHashingBusy("too many sign-ins at once; try again shortly")

    def __exit__(self, *exc: object) -> None:
        self.slots.release()
        self.owner._leave()
