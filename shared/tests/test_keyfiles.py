"""Key files created on first use: racing writers, in threads or processes, agree on one key."""

import stat
import threading
from pathlib import Path

from shared.keyfiles import load_or_create_key, write_atomically


def test_threads_of_one_process_racing_to_create_a_key_all_get_the_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.key"
    start = threading.Barrier(8)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def create() -> None:
        start.wait()
        try:
            keys.append(load_or_create_key(path))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    for _ in range(20):  # the race is narrow: run it often
        path.unlink(missing_ok=True)
        keys.clear()
        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(keys) == 8 and len(set(keys)) == 1
        assert keys[0] == path.read_bytes().strip() and len(keys[0]) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["signing.key"]  # no scratch left


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    path.write_bytes(b"mine\n")
    assert load_or_create_key(path) == b"mine"


def test_writing_atomically_replaces_the_file_and_leaves_no_scratch(tmp_path: Path) -> None:
    path = tmp_path / "out.eml"
    write_atomically(path, b"one", mode=0o644)
    write_atomically(path, b"two", mode=0o644)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [entry.name for entry in tmp_path.iterdir()] == ["out.eml"]
