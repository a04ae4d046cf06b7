"""The test OpenID Provider (deploy/oidc) is pinned: package.json names one exact version, the lock agrees."""

import json
import re
from pathlib import Path

OIDC = Path(__file__).resolve().parents[2] / "deploy" / "oidc"


def test_oidc_provider_is_pinned_exactly_and_locked() -> None:
    package = json.loads((OIDC / "package.json").read_text())
    lock = json.loads((OIDC / "package-lock.json").read_text())
    version = package["dependencies"]["oidc-provider"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version, no range"
    assert lock["packages"]["node_modules/oidc-provider"]["version"] == version
    assert lock["packages"]["node_modules/oidc-provider"]["integrity"].startswith("sha512-")


def test_the_provider_script_requires_pkce_and_offers_the_test_clients() -> None:
    script = (OIDC / "provider.js").read_text()
    assert "pkce: { required: () => true }" in script
    assert "client('knowflow', 'knowflow-test-secret')" in script
    assert "email_verified: false" in script  # the unverified person the tests refuse
