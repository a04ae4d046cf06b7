"""A real SMTP server process for the e-mail tests: aiosmtpd, each message written to a folder.

python smtp_server.py --port P --dir D [--starttls CERT KEY] [--implicit-tls CERT KEY]
    [--auth USER:PASS] [--reject-rcpt "550 no such user"]
Prints "ready" once it listens.
"""

import argparse
import ssl
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, directory: Path, reject_rcpt: str | None) -> None:
        self.directory = directory
        self.reject_rcpt = reject_rcpt

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        scratch = self.directory / f".{name}.tmp"
        scratch.write_bytes(envelope.original_content or envelope.content)
        scratch.rename(self.directory / f"{name}.eml")
        return "250 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth")
    parser.add_argument("--reject-rcpt")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    pair = args.starttls or args.implicit_tls
    if pair:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*pair)
        if args.starttls:
            options |= {"tls_context": context, "require_starttls": True}
        else:
            options["ssl_context"] = context
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                user.encode(),
                password.encode(),
            )
            return AuthResult(success=ok, handled=False)

        options |= {
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": bool(pair),
        }
    controller = Controller(
        Handler(args.dir, args.reject_rcpt), hostname="127.0.0.1", port=args.port, **options
    )
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
