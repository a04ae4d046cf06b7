"""`make demo`: the platform with a shared Stack Exchange site in it, for a newcomer to explore.

Starts everything as `make run` does (data under `./var`), imports the site through the
gateway the first time (`knowflow-admin import stackexchange`; later runs find the import
done and reuse `var/`), then prints where to look. Ctrl-C stops everything. A first run
stopped during the import finishes it next time (the import is idempotent).
"""

import argparse
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from deploy.admin import AdminTokens, run_import
from deploy.launch import LOCAL_ENV, Platform, Ports, interrupt, running_platform, watch
from deploy.stackexchange import DATA
from deploy.stackexchange_import import read_dump
from shared.settings import Settings

DEFAULT_SITE = "quantumcomputing"


def import_once(platform: Platform, folder: Path) -> bool:
    """Import the site unless an earlier demo run finished it; whether it is all in."""
    marker = platform.var_dir / f"demo-{folder.name}.imported"
    if marker.exists():
        print(f"{folder.name}: imported by an earlier run ({marker})", flush=True)
        return True
    print(f"importing {folder} (the first time only; a few minutes) ...", flush=True)
    dump = read_dump(folder)
    tokens = AdminTokens(
        Settings(jwt_private_key_file=platform.var_dir / "identity" / "jwt-ed25519.pem")
    )
    report = run_import(dump, gateway_url=platform.gateway_url, tokens=tokens)
    for line in report.lines():
        print(f"  {line}", flush=True)
    print(f"  {dump.site.attribution}", flush=True)
    if report.failed:
        print("some items failed: `make demo` again finishes the import", file=sys.stderr)
        return False
    marker.write_text(f"{datetime.now(UTC).isoformat()}\n" + "\n".join(report.lines()) + "\n")
    return True


def where_to_look(platform: Platform, site: str) -> None:
    print(
        f"""
Knowflow is running at {platform.gateway_url}/ with {site}.stackexchange.com imported
  open it:    {platform.gateway_url}/   create an account there (on a fresh demo the first
              person to sign up is the admin; imported people cannot sign in), then ask,
              answer, search, and find who knows what
  API docs:   {platform.gateway_url}/docs   (the same things over HTTP, for front ends)
  logs:       {platform.var_dir}/logs/   (Ctrl-C stops everything)
Data: Stack Exchange {site}.stackexchange.com, CC BY-SA, by the site's contributors.""",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--var-dir", default=os.environ.get("KNOWFLOW_VAR_DIR", "var"))
    parser.add_argument("--site", default=os.environ.get("KNOWFLOW_DEMO_SITE", DEFAULT_SITE))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("KNOWFLOW_GATEWAY_PORT", "8000"))
    )
    parser.add_argument(
        "--nats-port", type=int, default=int(os.environ.get("KNOWFLOW_NATS_PORT", "4222"))
    )
    args = parser.parse_args()
    folder = Path(args.site) if os.sep in args.site else DATA / args.site
    if not (folder / "Posts.xml").exists():
        print(f"no Stack Exchange dump at {folder}", file=sys.stderr)
        return 2
    ports = Ports.from_base(args.port, args.nats_port)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with running_platform(Path(args.var_dir), ports, extra_env=LOCAL_ENV) as platform:
            import_once(platform, folder)
            where_to_look(platform, folder.name)
            return watch(platform)
    except KeyboardInterrupt:
        pass
    print("Knowflow stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
