"""Deployment artefacts: the validations run, and the security invariants hold in plain Python."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
SERVICE_DEPLOYMENTS = {"ingestion", "inference", "strategy", "risk", "execution", "gateway"}
PASSWORDISH = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE_KEY|PUBLIC_KEYS|API_KEY)", re.IGNORECASE)


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here: run scripts/k8s-validate, which installs it")
    return kubectl


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Render every overlay once with kubectl's kustomize."""
    kubectl = _kubectl()
    documents = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        documents[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return documents


def _of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


def _pod_specs(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for document in documents:
        name = f"{document['kind']}/{document['metadata']['name']}"
        if document["kind"] in {"Deployment", "StatefulSet"}:
            specs.append((name, document["spec"]["template"]["spec"]))
        elif document["kind"] == "CronJob":
            specs.append((name, document["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def test_k8s_validate_script_passes_schemas_and_policy(tmp_path: Path) -> None:
    # Arrange
    _kubectl()
    # Act
    result = subprocess.run(
        [str(ROOT / "scripts" / "k8s-validate"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Assert
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 invalid" in result.stdout
    assert {f"{overlay}.yaml" for overlay in OVERLAYS} <= {path.name for path in tmp_path.iterdir()}


def test_compose_validate_script_passes_and_refuses_missing_secrets() -> None:
    # Act
    result = subprocess.run(
        [str(ROOT / "scripts" / "compose-validate")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Assert
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refuses to start without its secrets" in result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_deployment_has_probes_resources_and_a_locked_down_context(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    deployments = {
        doc["metadata"]["name"]: doc for doc in _of_kind(rendered[overlay], "Deployment")
    }
    assert set(deployments) >= SERVICE_DEPLOYMENTS
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["topologySpreadConstraints"], name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"]["type"] == "RuntimeDefault", name
            assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "ops"}, name
            assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ops"}, name
            assert {"name": "ops", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            assert container["args"] == ["service", name]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_risk_runs_two_replicas_with_a_disruption_budget(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    risk = next(
        d for d in _of_kind(rendered[overlay], "Deployment") if d["metadata"]["name"] == "risk"
    )
    budgets = {d["metadata"]["name"]: d for d in _of_kind(rendered[overlay], "PodDisruptionBudget")}
    assert risk["spec"]["replicas"] == 2
    assert budgets["risk"]["spec"]["minAvailable"] == 1
    assert set(budgets) >= SERVICE_DEPLOYMENTS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_risk_holds_the_private_key_and_only_execution_the_public_keys(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    holders: dict[str, set[str]] = {
        "RISK_APPROVAL_PRIVATE_KEY": set(),
        "EXECUTION_APPROVAL_PUBLIC_KEYS": set(),
    }
    for name, pod in _pod_specs(rendered[overlay]):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for variable in container.get("env", []):
                if variable["name"] in holders:
                    holders[variable["name"]].add(name)
    assert holders == {
        "RISK_APPROVAL_PRIVATE_KEY": {"Deployment/risk"},
        "EXECUTION_APPROVAL_PUBLIC_KEYS": {"Deployment/execution"},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_default_deny_and_custom_resources_are_present(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    documents = rendered[overlay]
    autoscaled = {
        d["spec"]["scaleTargetRef"]["name"] for d in _of_kind(documents, "HorizontalPodAutoscaler")
    }
    policies = {d["metadata"]["name"]: d["spec"] for d in _of_kind(documents, "NetworkPolicy")}
    kinds = {(d["apiVersion"], d["kind"]) for d in documents}
    assert autoscaled == {"inference", "strategy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert ("monitoring.coreos.com/v1", "ServiceMonitor") in kinds
    assert ("monitoring.coreos.com/v1", "PrometheusRule") in kinds
    assert ("batch/v1", "CronJob") in kinds
    if overlay == "prod":
        assert ("rabbitmq.com/v1beta1", "RabbitmqCluster") in kinds
        assert ("postgresql.cnpg.io/v1", "Cluster") in kinds
    else:
        assert {d["metadata"]["name"] for d in _of_kind(documents, "StatefulSet")} == {
            "rabbitmq",
            "postgres",
            "redis",
        }
    assert all(
        d["metadata"].get("namespace") == "trading-ai"
        for d in documents
        if d["kind"] != "Namespace"
    )


def test_no_secret_in_k8s_carries_a_value() -> None:
    secrets = [
        document
        for path in K8S.rglob("*.yaml")
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document and document.get("kind") == "Secret"
    ]
    assert secrets, "the secret templates are missing"
    for secret in secrets:
        assert all(value in ("", None) for value in (secret.get("stringData") or {}).values()), (
            secret
        )
        assert not secret.get("data"), secret


def test_no_kustomization_renders_a_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # an apply must never overwrite the live secrets with blanks
    for overlay, documents in rendered.items():
        assert not _of_kind(documents, "Secret"), overlay


def test_compose_file_holds_no_password_literal() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            text = str(value)
            if PASSWORDISH.search(variable):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:[?-][^}]*\}", text), (
                    f"{name}.{variable}={text}"
                )
            for secret in re.findall(r"://[^:/@]+:([^@]+)@", text):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", secret), f"{name}.{variable}"


def test_compose_services_run_read_only_as_non_root_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name in ("ingestion", "strategy", "risk", "execution", "gateway", "optimizer"):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["user"] == "10001:10001", name
        assert service["cap_drop"] == ["ALL"], name
        assert name == "optimizer" or "/health" in " ".join(service["healthcheck"]["test"]), name
    assert compose["services"]["risk"]["deploy"]["replicas"] == 2
    assert compose["services"]["optimizer"]["profiles"] == ["optimizer"]


def test_every_service_has_a_dockerfile_that_installs_from_the_lock_as_non_root() -> None:
    services = sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml"))
    for service in services:
        dockerfile = (ROOT / "services" / service / "Dockerfile").read_text(encoding="utf-8")
        packages = "services/cli" if service == "cli" else f"services/{service} services/cli"
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile, service
        assert "FROM ${PYTHON_IMAGE} AS builder" in dockerfile, service
        assert f"RUN bash /build/install-venv.sh {packages}\n" in dockerfile, service
        assert "USER 10001:10001" in dockerfile, service
        if service in {"cli", "optimizer"}:
            assert "HEALTHCHECK NONE" in dockerfile, service
        else:
            assert f'CMD ["service", "{service}"]' in dockerfile, service
            assert "http://127.0.0.1:8080/health" in dockerfile, service
    installer = (ROOT / "deploy" / "docker" / "install-venv.sh").read_text(encoding="utf-8")
    assert 'pip" install --quiet --require-hashes --no-deps -r' in installer
    assert 'pip sync --quiet --python "$venv/bin/python" --require-hashes' in installer
    assert '--no-deps --no-cache "$wheels"/*.whl' in installer


def test_broker_definitions_enforce_the_approval_path() -> None:
    definitions = json.loads(
        (ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text(encoding="utf-8")
    )
    users = {user["name"] for user in definitions["users"]}
    topic = {
        (entry["user"], entry["exchange"]): entry for entry in definitions["topic_permissions"]
    }
    permissions = {entry["user"]: entry for entry in definitions["permissions"]}
    assert all(user["password_hash"] == "" for user in definitions["users"])
    assert {
        f"tai-{name}"
        for name in (
            "ingestion",
            "inference",
            "strategy",
            "risk",
            "execution",
            "gateway",
            "notifier",
            "optimizer",
        )
    } < users
    publishers = {
        user
        for (user, exchange), entry in topic.items()
        if exchange == "tai.events" and re.match(entry["write"], "order.approved")
    }
    readers = {
        user
        for user, entry in permissions.items()
        if user != "tai-admin" and re.match(entry["read"], "tai.execution.approvals")
    }
    assert publishers == {"tai-risk"}
    assert readers == {"tai-execution"}
    assert {exchange["name"] for exchange in definitions["exchanges"]} == {
        "tai.events",
        "tai.control",
        "tai.dead-letter",
    }
    assert [queue["name"] for queue in definitions["queues"]] == [
        "tai.dead-letter",
        "tai.dead-letter.requeue",
        "tai.history",
    ]


def test_k8s_copies_of_the_broker_files_match_deploy() -> None:
    for name in ("definitions.json", "rabbitmq.conf", "tai-render-definitions.sh"):
        original = (ROOT / "deploy" / "rabbitmq" / name).read_bytes()
        copy = (K8S / "components" / "rabbitmq-definitions" / "files" / name).read_bytes()
        assert copy == original, name


def test_prometheus_rule_matches_the_compose_alert_rules(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    alerts = yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    )
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    assert {
        "TaiServiceDown",
        "TaiDeadLetterGrowing",
        "TaiRiskHalted",
        "TaiConsumerLag",
        "TaiMarketDataStale",
    } <= names
    halted = next(
        rule
        for group in alerts["groups"]
        for rule in group["rules"]
        if rule["alert"] == "TaiRiskHalted"
    )
    assert "tai_risk_trading_state" in halted["expr"]
    assert "== 2" in halted["expr"]
    for documents in rendered.values():
        rule = _of_kind(documents, "PrometheusRule")[0]
        assert rule["spec"] == alerts


def test_grafana_dashboards_query_the_system_metrics() -> None:
    queries = {
        path.stem: " ".join(
            target["expr"]
            for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
            for target in panel["targets"]
        )
        for path in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")
    }
    assert set(queries) == {"pipeline", "trading", "risk", "ml"}
    expected = {
        "pipeline": [
            "tai_messages_consumed_total",
            "tai_messages_published_total",
            "tai_messages_failed_total",
            "tai_messages_dead_lettered_total",
            "tai_handler_latency_seconds_bucket",
        ],
        "trading": ["tai_equity", "tai_drawdown_pct", "tai_open_positions", "tai_orders_total"],
        "risk": ["tai_risk_trading_state"],
        "ml": ["tai_model_version_info", "tai_prediction_latency_seconds"],
    }
    for dashboard, metrics in expected.items():
        for metric in metrics:
            assert metric in queries[dashboard], f"{dashboard} lacks {metric}"


def _gateway_serves() -> dict[int, set[str]]:
    """Return the paths the gateway process serves per default port (ops server, API, console)."""
    from starlette.routing import Route  # noqa: PLC0415

    from tai_gateway.config import GatewaySettings  # noqa: PLC0415
    from tai_telemetry.metrics import Telemetry  # noqa: PLC0415
    from tai_telemetry.ops import create_ops_app  # noqa: PLC0415

    fields = GatewaySettings.model_fields
    ops_paths = {
        route.path
        for route in create_ops_app(Telemetry(service="gateway"), lambda: True).routes
        if isinstance(route, Route)
    }
    return {
        int(fields["ops_port"].default): ops_paths,
        int(fields["api_port"].default): {"/health", "/ready", "/metrics"},
        int(fields["console_port"].default): {"/login"},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes_ask_what_the_gateway_serves_and_it_listens_beyond_loopback(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    # Arrange
    serves = _gateway_serves()
    gateway = next(
        d for d in _of_kind(rendered[overlay], "Deployment") if d["metadata"]["name"] == "gateway"
    )
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    environment = {item["name"]: item.get("value") for item in container["env"]}
    config = next(
        d for d in _of_kind(rendered[overlay], "ConfigMap") if d["metadata"]["name"] == "tai-config"
    )
    service = next(
        d for d in _of_kind(rendered[overlay], "Service") if d["metadata"]["name"] == "gateway"
    )
    # Assert: every probe asks a port and path the gateway process really serves
    assert container["args"] == ["service", "gateway"]  # runs through run_service: ops server
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in serves[ports[check["port"]]], (probe, check)
    assert set(ports.values()) == set(serves)
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    # the API, the console and the ops port listen on the pod IP, not on loopback
    assert environment["GATEWAY_API_HOST"] == "0.0.0.0"
    assert environment["GATEWAY_CONSOLE_HOST"] == "0.0.0.0"
    assert config["data"]["OPS_HOST"] == "0.0.0.0"


def test_compose_gateway_health_check_and_ports_reach_the_gateway() -> None:
    serves = _gateway_serves()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    gateway = compose["services"]["gateway"]
    environment = gateway["environment"]
    health = re.search(
        r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", " ".join(gateway["healthcheck"]["test"])
    )
    assert health is not None
    assert health.group(2) in serves[int(health.group(1))]
    published = {int(mapping.rsplit(":", 1)[1]) for mapping in gateway["ports"]}
    assert published <= set(serves)
    assert all(mapping.startswith("127.0.0.1:") for mapping in gateway["ports"])
    assert environment["GATEWAY_API_HOST"] == "0.0.0.0"
    assert environment["GATEWAY_CONSOLE_HOST"] == "0.0.0.0"
    assert environment["OPS_HOST"] == "0.0.0.0"
    assert gateway["command"] == ["service", "gateway"]
