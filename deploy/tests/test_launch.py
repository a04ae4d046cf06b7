"""The launcher's shutdown order: the services and the gateway, then NATS."""

import subprocess
import sys
import time
from pathlib import Path

from deploy.launch import Platform, Ports

# Records when SIGTERM arrived and when the process ended; `delay` is its shutdown work.
PROCESS = """
import signal, sys, time
log, delay = sys.argv[1], float(sys.argv[2])
def stop(_signum, _frame):
    with open(log, "a") as out:
        out.write(f"term {time.monotonic()}\\n")
    time.sleep(delay)
    with open(log, "a") as out:
        out.write(f"exit {time.monotonic()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(log + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


def recorded(log: Path) -> dict[str, float]:
    lines = (line.split() for line in log.read_text().splitlines())
    return {event: float(at) for event, at in lines}


def test_nats_is_stopped_only_after_every_service_has_exited(tmp_path: Path) -> None:
    platform = Platform(var_dir=tmp_path, ports=Ports())
    for name, delay in (("nats", 0.0), ("identity", 0.3), ("gateway", 0.1)):
        platform.processes[name] = subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(tmp_path / name), str(delay)]
        )
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{name}.ready").exists() for name in platform.processes):
        assert time.monotonic() < deadline, "the stand-in processes did not start"
        time.sleep(0.05)
    platform.stop()
    nats, identity, gateway = (
        recorded(tmp_path / name) for name in ("nats", "identity", "gateway")
    )
    assert nats["term"] >= max(identity["exit"], gateway["exit"])
    assert all(process.returncode == 0 for process in platform.processes.values())
