"""A webhook receiver process for tests: verifies with `standardwebhooks`, logs what it got.

    python receiver.py --port P --secret whsec_... --dir D

Every request is verified with `standardwebhooks.Webhook(secret).verify` (the independent
implementation). A verified one is appended to `D/verified.log` as
`<webhook-id> <type> <answer>`; a refused one to `D/refused.log`; a request whose body
ends before its Content-Length (the sender stopped mid-request) to `D/cut-off.log`. The answer is the
status written in `D/status` (default 200), so a test can make it answer 500 or 503; a
refused signature is answered 401. `D/ready` appears once it listens.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook


def make_handler(secret: str, directory: Path) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()
    webhook = Webhook(secret)

    def append(name: str, line: str) -> None:
        with lock, (directory / name).open("a") as handle:
            handle.write(line + "\n")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            declared = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(declared)
            if len(body) < declared:
                # The sender went away mid-request (a sender stopped while delivering): no
                # webhook arrived, so none is refused; the sender tries it again.
                append("cut-off.log", f"{self.headers.get('webhook-id')} {len(body)}/{declared}")
                self.close_connection = True
                return
            try:
                event = webhook.verify(body, dict(self.headers.items()))
            except Exception as exc:  # any malformed header is a refusal too
                append("refused.log", f"{self.headers.get('webhook-id')} {type(exc).__name__}")
                self.answer(401)
                return
            status_file = directory / "status"
            status = int(status_file.read_text().strip() or 200) if status_file.exists() else 200
            line = {
                "id": self.headers["webhook-id"],
                "type": event["type"],
                "status": status,
                "content_type": self.headers.get("content-type"),
                "data": event.get("data", {}),
            }
            append("verified.log", json.dumps(line))
            self.answer(status)

        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the logs above are what tests read

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    arguments = parser.parse_args()
    arguments.dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(
        ("127.0.0.1", arguments.port), make_handler(arguments.secret, arguments.dir)
    )
    (arguments.dir / "ready").touch()
    server.serve_forever()


if __name__ == "__main__":
    main()
