"""Deploy files against the settings: every variable a deployment sets is one its workload reads.

A variable that docker-compose.yml, k8s/ or .env.example sets and nothing reads is a setting
the operator believes is in force while the service runs on its default (IG credentials under
the wrong name leave ingestion without IG and execution unable to start with broker ``ig``).
Here each workload's variables are compared with the names its settings class reads (as
pydantic-settings resolves them: prefix, aliases, shared infrastructure variables), and each
settings class's required fields must be set by every deployment of it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings, EnvSettingsSource

from tai_execution.config import ExecutionSettings
from tai_gateway.config import GatewaySettings
from tai_inference.config import InferenceSettings
from tai_ingestion.config import IngestionSettings
from tai_notifier.config import NotifierSettings
from tai_optimizer.config import OptimizerSettings
from tai_risk.config import RiskSettings
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "ingestion": IngestionSettings,
    "inference": InferenceSettings,
    "strategy": StrategySettings,
    "risk": RiskSettings,
    "execution": ExecutionSettings,
    "gateway": GatewaySettings,
    "notifier": NotifierSettings,
    "optimizer": OptimizerSettings,
}
"""What ``trading-ai service <name>`` loads (each ``tai_<name>.__main__``)."""

OPENTELEMETRY_VARIABLES = frozenset({"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"})
"""Read by the OpenTelemetry SDK's resource when a service builds its tracer provider
(checked below), not by a settings class."""

COMPOSITION = re.compile(r"\$\(([A-Z0-9_]+)\)")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)")


@dataclass
class Workload:
    """One deployed process: what it runs and the variables it gets."""

    deployment: str
    name: str
    arguments: list[str]
    variables: dict[str, str] = field(default_factory=dict)
    """Name -> value text (k8s: the literal value, or ``secret:<name>/<key>[?]``)."""

    def describe(self) -> str:
        return f"{self.deployment} {self.name}"


def settings_variables(settings_class: type[BaseSettings]) -> set[str]:
    """Return the environment variables (upper case) a settings class reads."""
    source = EnvSettingsSource(settings_class)
    return {
        variable.upper()
        for name, info in settings_class.model_fields.items()
        for _key, variable, _complex in source._extract_field_info(info, name)
    }


def required_variables(settings_class: type[BaseSettings]) -> dict[str, set[str]]:
    """Return, per required field, the variables any one of which sets it."""
    source = EnvSettingsSource(settings_class)
    return {
        name: {variable.upper() for _key, variable, _c in source._extract_field_info(info, name)}
        for name, info in settings_class.model_fields.items()
        if info.is_required()
    }


def command_variables(arguments: list[str]) -> set[str]:
    """Return the variables the ``trading-ai`` command in ``arguments`` reads (typer options)."""
    from tai_cli.commands import app  # noqa: PLC0415 - the CLI loads every tool

    command: Any = typer.main.get_command(app)
    for word in arguments:
        subcommands = getattr(command, "commands", {})
        if word not in subcommands:
            break
        command = subcommands[word]
        deferred = getattr(command, "deferred", None)
        if deferred is not None:  # a lazily registered command: read the real one
            command = typer.main.get_command(deferred.load())
    variables: set[str] = set()
    for parameter in command.params:
        envvar = getattr(parameter, "envvar", None)
        if isinstance(envvar, str):
            variables.add(envvar.upper())
        elif envvar:
            variables.update(name.upper() for name in envvar)
    return variables


def reads(workload: Workload) -> set[str]:
    """Return what the workload's process reads from the environment."""
    if workload.arguments[:1] == ["service"]:
        return settings_variables(SERVICE_SETTINGS[workload.arguments[1]]) | OPENTELEMETRY_VARIABLES
    return command_variables(workload.arguments)


def composed_only(workload: Workload) -> set[str]:
    """Return the k8s variables used only to compose another one (``$(RABBITMQ_PASSWORD)``)."""
    return {
        name for value in workload.variables.values() for name in COMPOSITION.findall(value)
    } & set(workload.variables)


# --- docker-compose.yml ------------------------------------------------------------------


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return loaded


def compose_workloads() -> list[Workload]:
    workloads = []
    for name, service in compose_file()["services"].items():
        if not str(service.get("image", "")).startswith("trading-ai/"):
            continue  # RabbitMQ, PostgreSQL, Redis, observability: not ours to check
        command = service.get("command") or []
        environment = service.get("environment") or {}
        workloads.append(
            Workload(
                "compose",
                name,
                list(command),
                {key: str(value) for key, value in environment.items()},
            )
        )
    return workloads


def env_example_variables() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip())
    return names


# --- k8s ---------------------------------------------------------------------------------


def k8s_documents(directory: Path) -> list[dict[str, Any]]:
    """Return the documents of a kustomization's resources (base: plain files)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    documents = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            documents.extend(k8s_documents(path))
        else:
            documents.extend(doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc)
    return documents


def rendered_overlays() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield each overlay as kubectl renders it (only where kubectl is installed)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    for overlay in sorted(path for path in (K8S / "overlays").iterdir() if path.is_dir()):
        result = subprocess.run(
            [kubectl, "kustomize", str(overlay)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        yield overlay.name, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def k8s_workloads(deployment: str, documents: list[dict[str, Any]]) -> list[Workload]:
    config_maps = {
        doc["metadata"]["name"]: doc.get("data", {})
        for doc in documents
        if doc["kind"] == "ConfigMap"
    }
    workloads = []
    for document in documents:
        if document["kind"] == "Deployment":
            pod = document["spec"]["template"]["spec"]
        elif document["kind"] == "CronJob":
            pod = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        for container in pod["containers"]:
            if not str(container.get("image", "")).startswith("trading-ai/"):
                continue
            variables: dict[str, str] = {}
            for source in container.get("envFrom", []):
                reference = source.get("configMapRef", {}).get("name")
                variables.update(dict.fromkeys(config_maps.get(reference, {}), "configmap"))
            for variable in container.get("env", []):
                secret = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret is not None:
                    optional = "?" if secret.get("optional") else ""
                    reference = f"secret:{secret['name']}/{secret['key']}{optional}"
                    variables[variable["name"]] = reference
                else:
                    variables[variable["name"]] = str(variable.get("value", "configmap"))
            workloads.append(
                Workload(deployment, document["metadata"]["name"], container["args"], variables)
            )
    return workloads


def all_k8s_workloads() -> list[Workload]:
    workloads = k8s_workloads("k8s/base", k8s_documents(K8S / "base"))
    for overlay, documents in rendered_overlays():
        workloads.extend(k8s_workloads(f"k8s/overlays/{overlay}", documents))
    return workloads


def all_workloads() -> list[Workload]:
    return compose_workloads() + all_k8s_workloads()


# --- the contract ------------------------------------------------------------------------


@pytest.mark.parametrize("workload", all_workloads(), ids=Workload.describe)
def test_every_variable_a_deployment_sets_is_read_by_its_workload(workload: Workload) -> None:
    # Arrange
    read = reads(workload)
    composed = composed_only(workload) if workload.deployment.startswith("k8s") else set()
    # Act
    unread = sorted(set(workload.variables) - read - composed)
    # Assert
    assert unread == [], (
        f"{workload.describe()} sets {unread}, which {' '.join(workload.arguments)} never reads"
    )


@pytest.mark.parametrize(
    "workload",
    [workload for workload in all_workloads() if workload.arguments[:1] == ["service"]],
    ids=Workload.describe,
)
def test_every_required_setting_is_set_by_every_deployment(workload: Workload) -> None:
    # Arrange
    settings_class = SERVICE_SETTINGS[workload.arguments[1]]
    # Act: a required value must come from a variable that is always there
    missing = {
        field_name
        for field_name, variables in required_variables(settings_class).items()
        if not any(
            name in workload.variables and not workload.variables[name].endswith("?")
            for name in variables
        )
    }
    # Assert
    assert missing == set(), f"{workload.describe()} leaves required {sorted(missing)} unset"


def compose_interpolations() -> set[str]:
    """Return the variables docker-compose.yml interpolates (comments left out)."""
    lines = (ROOT / "docker-compose.yml").read_text("utf-8").splitlines()
    return {
        name
        for line in lines
        if not line.lstrip().startswith("#")
        for name in INTERPOLATION.findall(line.split(" #", 1)[0])
    }


def test_every_variable_in_env_example_is_used_by_docker_compose() -> None:
    # Arrange
    interpolated = compose_interpolations()
    # Act
    unused = sorted(env_example_variables() - interpolated)
    # Assert
    assert unused == [], f".env.example sets {unused}, which docker-compose.yml never uses"


def test_every_variable_docker_compose_needs_is_in_env_example() -> None:
    assert sorted(compose_interpolations() - env_example_variables()) == []


def test_every_secret_key_a_workload_reads_is_in_the_secret_templates() -> None:
    # Arrange
    templates = {
        document["metadata"]["name"]: set(document.get("stringData") or {})
        for document in yaml.safe_load_all(
            (K8S / "secret-templates" / "secrets.yaml").read_text("utf-8")
        )
        if document
    }
    # Act
    unknown = sorted(
        f"{workload.name}: {value}"
        for workload in k8s_workloads("k8s/base", k8s_documents(K8S / "base"))
        for value in workload.variables.values()
        if value.startswith("secret:")
        and value.removeprefix("secret:").rstrip("?").split("/")[1]
        not in templates.get(value.removeprefix("secret:").split("/")[0], set())
    )
    # Assert
    assert unknown == []


def test_ig_credentials_reach_ingestion_and_execution_under_the_names_they_read() -> None:
    # The same key and account serve both services (their allowances are shared).
    for workload in all_workloads():
        if workload.name == "ingestion":
            expected = {"INGESTION_IG_API_KEY", "INGESTION_IG_IDENTIFIER", "INGESTION_IG_PASSWORD"}
        elif workload.name == "execution":
            expected = {"EXECUTION_IG_API_KEY", "EXECUTION_IG_IDENTIFIER", "EXECUTION_IG_PASSWORD"}
        else:
            continue
        assert expected <= set(workload.variables), workload.describe()


def test_opentelemetry_sdk_reads_the_service_name_and_resource_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange
    monkeypatch.setenv("OTEL_SERVICE_NAME", "execution")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=compose")
    # Act
    provider = Telemetry(service="execution").tracer_provider
    # Assert
    assert provider is not None
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "execution"
    assert attributes["deployment.environment"] == "compose"
