"""Start the whole platform on embedded defaults: NATS, the five services, the web app and
the gateway.

`make run` calls `python -m deploy.launch`. Data lives under `./var` (SQLite per
service, JetStream files, the signing key), so it survives a restart. Ctrl-C stops
everything, gateway first and NATS last.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.natsserver import free_port, start_nats_server, wait_for_port

SERVICES = ("identity", "posts", "search", "digests", "notifications")
# `make run` and `make demo` only: whoever registers first on a fresh `var/` is the admin.
# A deployment (and the test platforms) creates its first admin with
# `knowflow-admin create-admin` instead.
LOCAL_ENV = {"KNOWFLOW_FIRST_USER_IS_ADMIN": "true"}


@dataclass
class Ports:
    gateway: int = 8000
    identity: int = 8001
    posts: int = 8002
    search: int = 8003
    digests: int = 8004
    notifications: int = 8005
    web: int = 8006
    nats: int = 4222

    def of(self, name: str) -> int:
        return int(getattr(self, name))

    @classmethod
    def from_base(cls, base: int, nats: int) -> "Ports":
        """The gateway on `base`, the services and the web app on the ports after it."""
        return cls(
            gateway=base,
            identity=base + 1,
            posts=base + 2,
            search=base + 3,
            digests=base + 4,
            notifications=base + 5,
            web=base + 6,
            nats=nats,
        )

    @classmethod
    def free(cls) -> "Ports":
        """Free ports for every process (tests and benchmarks, side by side)."""
        return cls(**{name: free_port() for name in (*SERVICES, "web", "gateway", "nats")})


@dataclass
class Platform:
    """The running processes and where to reach them."""

    var_dir: Path
    ports: Ports
    host: str = "127.0.0.1"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_urls: dict[str, str] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.ports.gateway}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.of(name)}"

    def environment(self, name: str, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KNOWFLOW_SERVICE_NAME": name,
                "KNOWFLOW_NATS_URL": f"nats://127.0.0.1:{self.ports.nats}",
                "KNOWFLOW_IDENTITY_URL": self.url("identity"),
                "KNOWFLOW_POSTS_URL": self.url("posts"),
                "KNOWFLOW_SEARCH_SERVICE_URL": self.url("search"),
                "KNOWFLOW_DIGESTS_URL": self.url("digests"),
                "KNOWFLOW_NOTIFICATIONS_URL": self.url("notifications"),
                "KNOWFLOW_WEB_URL": self.url("web"),
                "KNOWFLOW_WEB_API_URL": self.url("gateway"),
                "KNOWFLOW_WEB_SESSION_KEY_FILE": str(self.var_dir / "web" / "session.key"),
                "KNOWFLOW_FORWARDING_KEY_FILE": str(self.var_dir / "gateway" / "forwarding.key"),
                "KNOWFLOW_MAIL_DIR": str(self.var_dir / "mail"),
                "KNOWFLOW_SIGNING_KEY_FILE": str(self.var_dir / "notifications" / "signing.key"),
                "KNOWFLOW_WEBHOOK_SECRET_KEY_FILE": str(
                    self.var_dir / "notifications" / "webhook-secrets.key"
                ),
                "KNOWFLOW_PUBLIC_URL": self.gateway_url,
                "KNOWFLOW_JWT_PRIVATE_KEY_FILE": str(self.var_dir / "identity" / "jwt-ed25519.pem"),
            }
        )
        # A database URL given per service (KNOWFLOW_<NAME>_DATABASE_URL) wins over SQLite.
        env["KNOWFLOW_DATABASE_URL"] = self.database_urls.get(name) or os.environ.get(
            f"KNOWFLOW_{name.upper()}_DATABASE_URL", f"sqlite:///{self.var_dir / name}.db"
        )
        env.update(extra)
        return env

    def start_uvicorn(
        self, name: str, module: str, port: int, host: str, extra: dict[str, str]
    ) -> None:
        log = open(self.var_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--host",
            host,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            # The gateway's own protocol caps request heads (431); see gateway/server.py.
            "gateway.server:CappedHttpToolsProtocol" if name == "gateway" else "httptools",
            "--no-server-header",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
        # Own session: Ctrl-C goes to the launcher alone, which stops services in order.
        self.processes[name] = subprocess.Popen(
            command,
            env=self.environment(name, extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, name: str, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.var_dir}/logs/{name}.log"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout}s; see {self.var_dir}/logs/{name}.log")

    def stop(self) -> None:
        """Gateway and services first, then NATS once they have exited: a service's
        shutdown drains its NATS connection, which with NATS already gone waited out the
        bus's 5 s drain timeout in every process."""
        services = [name for name in reversed(list(self.processes)) if name != "nats"]
        self._terminate(services)
        self._terminate(["nats"] if "nats" in self.processes else [])

    def _terminate(self, names: list[str]) -> None:
        for name in names:
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in names:
            process = self.processes[name]
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def failed(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None


@contextmanager
def running_platform(
    var_dir: Path,
    ports: Ports | None = None,
    *,
    gateway_host: str = "127.0.0.1",
    extra_env: dict[str, str] | None = None,
    database_urls: dict[str, str] | None = None,
) -> Iterator[Platform]:
    """Start NATS, the services, the web app and the gateway; stop them all on exit."""
    platform = Platform(
        var_dir=var_dir.resolve(),
        ports=ports or Ports(),
        host=gateway_host,
        database_urls=database_urls or {},
    )
    (platform.var_dir / "logs").mkdir(parents=True, exist_ok=True)
    extra = extra_env or {}
    try:
        platform.processes["nats"] = start_nats_server(
            platform.var_dir / "nats",
            port=platform.ports.nats,
            log_file=platform.var_dir / "logs" / "nats.log",
        )
        # Identity first: the others fetch its signing keys.
        for name in SERVICES:
            platform.start_uvicorn(
                name, f"services.{name}.main", platform.ports.of(name), "127.0.0.1", extra
            )
        for name in SERVICES:
            platform.wait_ready(name, platform.url(name))
        # Before the gateway, whose readiness includes it; it calls the gateway per request.
        platform.start_uvicorn("web", "services.web.main", platform.ports.web, "127.0.0.1", extra)
        platform.wait_ready("web", platform.url("web"))
        platform.start_uvicorn(
            "gateway", "gateway.main", platform.ports.gateway, gateway_host, extra
        )
        wait_for_port(platform.ports.gateway, timeout=30, host="127.0.0.1")
        platform.wait_ready("gateway", f"http://127.0.0.1:{platform.ports.gateway}")
        yield platform
    finally:
        platform.stop()


def interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--var-dir", default=os.environ.get("KNOWFLOW_VAR_DIR", "var"))
    parser.add_argument("--host", default=os.environ.get("KNOWFLOW_GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("KNOWFLOW_GATEWAY_PORT", "8000"))
    )
    parser.add_argument(
        "--nats-port", type=int, default=int(os.environ.get("KNOWFLOW_NATS_PORT", "4222"))
    )
    args = parser.parse_args()
    ports = Ports.from_base(args.port, args.nats_port)
    # Installed explicitly: a shell that starts us in the background ignores SIGINT.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with running_platform(
            Path(args.var_dir), ports, gateway_host=args.host, extra_env=LOCAL_ENV
        ) as platform:
            print(f"Knowflow is running at {platform.gateway_url}/", flush=True)
            print(
                f"  API docs: {platform.gateway_url}/docs   (Ctrl-C stops everything)", flush=True
            )
            print(f"  logs: {platform.var_dir}/logs/", flush=True)
            return watch(platform)
    except KeyboardInterrupt:
        pass
    print("Knowflow stopped.", flush=True)
    return 0


def watch(platform: Platform) -> int:
    """Keep running until Ctrl-C (KeyboardInterrupt) or until a process dies (1)."""
    while True:
        if crashed := platform.failed():
            print(
                f"{crashed} stopped unexpectedly; see {platform.var_dir}/logs/{crashed}.log",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
