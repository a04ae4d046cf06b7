"""docker-compose.yml: valid Compose, and the rules Knowflow deploys by.

The schema is the Compose Specification's own, vendored as compose-spec.json
from the Go module github.com/compose-spec/compose-go/v2 v2.16.2, file
schema/compose-spec.json (the copy `docker compose` itself validates with).
To update: `go mod download -json github.com/compose-spec/compose-go/v2@<ver>`,
copy schema/compose-spec.json from the "Dir" it prints, and update
SCHEMA_SHA256 and the version above.
"""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from tests.deploy.conftest import COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, REPO

SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"

APP_SERVICES = {
    "identity": 8001,
    "posts": 8002,
    "search": 8003,
    "digests": 8004,
    "notifications": 8005,
    "web": 8006,
    "gateway": 8000,
}
# App containers without a database of their own.
WITHOUT_DATABASE = {"gateway", "web"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
KNOWFLOW_VARIABLE = re.compile(r"\bKNOWFLOW_[A-Z0-9_]+\b")


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed: add it to the dev dependencies"
    )
    schema = jsonschema.Draft202012Validator(
        json.loads(SCHEMA_FILE.read_text()),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in schema.iter_errors(compose)
    ]
    assert errors == []


def test_vendored_schema_is_the_upstream_copy() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        healthcheck = service.get("healthcheck") or {}
        assert not healthcheck.get("disable"), name
        test = healthcheck.get("test")
        assert isinstance(test, list), f"{name}: healthcheck.test must be an exec list"
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name


def test_every_dependency_waits_until_healthy(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    for name, service in services(compose).items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, spec in depends_on.items():
            assert dependency in names, f"{name} depends on unknown {dependency}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dependency}"


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    publishing = {name for name, service in services(compose).items() if service.get("ports")}
    assert publishing == {"gateway"}
    (published,) = services(compose)["gateway"]["ports"]
    assert str(published).endswith(":8000")


def test_app_services_run_the_one_image_on_their_own_port(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    assert set(APP_SERVICES) <= set(all_services)
    builds = {
        name: (service.get("build"), service.get("image"))
        for name, service in all_services.items()
        if "build" in service
    }
    assert set(builds) == set(APP_SERVICES)
    assert len({repr(build) for build in builds.values()}) == 1, "one build, shared"
    build = next(iter(builds.values()))[0]
    assert isinstance(build, dict)
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    for name, port in APP_SERVICES.items():
        command = all_services[name]["command"]
        assert command[0] == "uvicorn" and command[-2:] == ["--port", str(port)], name
        assert "--no-server-header" in command, name
        assert f":{port}/" in all_services[name]["healthcheck"]["test"][-1], name
    gateway = all_services["gateway"]["command"]
    assert gateway[gateway.index("--http") + 1] == "gateway.server:CappedHttpToolsProtocol"


def test_every_knowflow_variable_is_a_setting() -> None:
    settings = {f"KNOWFLOW_{field.upper()}" for field in Settings.model_fields}
    used = {
        source.name: set(KNOWFLOW_VARIABLE.findall(source.read_text()))
        for source in (COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE)
    }
    unknown = {name: sorted(found - settings) for name, found in used.items() if found - settings}
    assert unknown == {}


def test_env_example_documents_every_variable_compose_reads() -> None:
    documented = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    read = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    assert read - documented == set()


def test_postgres_init_creates_every_service_database(compose: dict[str, Any]) -> None:
    init_sql = "\n".join(
        path.read_text() for path in sorted((REPO / "deploy/postgres/init").glob("*.sql"))
    )
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    wanted = {
        url.rsplit("/", 1)[-1]
        for service in services(compose).values()
        for key, url in (service.get("environment") or {}).items()
        if key == "KNOWFLOW_DATABASE_URL"
    }
    assert wanted == {f"knowflow_{name}" for name in APP_SERVICES if name not in WITHOUT_DATABASE}
    assert wanted <= created


def test_identity_keeps_its_signing_key_on_a_volume(compose: dict[str, Any]) -> None:
    identity = services(compose)["identity"]
    key_file = Path(identity["environment"]["KNOWFLOW_JWT_PRIVATE_KEY_FILE"])
    named_volumes = set(compose.get("volumes") or {})
    mounts = {
        Path(target): source
        for source, target in (volume.split(":")[:2] for volume in identity["volumes"])
    }
    assert mounts.get(key_file.parent) in named_volumes


def test_jetstream_config_is_mounted_into_nats(compose: dict[str, Any]) -> None:
    nats = services(compose)["nats"]
    config_mounts = [v for v in nats["volumes"] if v.startswith("./deploy/nats/nats.conf:")]
    assert len(config_mounts) == 1
    target = config_mounts[0].split(":")[1]
    assert nats["command"] == ["--config", target]
    assert "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
