"""Every ``trading-ai`` command line in k8s/, deploy/, docker-compose.yml and the Dockerfiles
parses through the real CLI parser, so a broken argument list fails ``make test``.

The nightly optimizer once ran ``trading-ai optimize`` with no arguments in the CronJob, the
compose file and its image, and failed every night without a test noticing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer._click.exceptions import ClickException

from tai_cli.commands import app
from tai_cli.main import SERVICES

ROOT = Path(__file__).resolve().parents[2]
IMAGE = re.compile(r"^trading-ai/(?P<name>[a-z]+)")
SHELL_LINE = re.compile(
    r"(?:^|[ \t;&|(])trading-ai[ \t]+(?P<arguments>[^\n#;&|)]+)", flags=re.MULTILINE
)


@dataclass(frozen=True)
class CommandLine:
    """Arguments given to the ``trading-ai`` entry point, and where they were found."""

    where: str
    arguments: tuple[str, ...]


def parse(arguments: tuple[str, ...]) -> None:
    """Parse a command line as ``trading-ai`` would; raise ClickException when it is broken."""
    if arguments[:1] == ("service",):
        # tai_cli.main dispatches `service NAME` before the Typer app is even imported.
        if len(arguments) != 2 or arguments[1] not in SERVICES:
            raise ClickException(f"`service` takes one of {SERVICES}, got {arguments[1:]}")
        return
    if not arguments:
        raise ClickException("no command")
    group = typer.main.get_command(app)
    if arguments[0].startswith("-"):  # the entry point's own options, e.g. --help
        context = group.make_context("trading-ai", [], resilient_parsing=True)
        parameters = [*group.get_params(context)]
        known = {option for parameter in parameters for option in parameter.opts}
        unknown = [argument for argument in arguments if argument not in known]
        if unknown:
            raise ClickException(f"no such trading-ai option {unknown}")
        return
    context = group.make_context("trading-ai", [arguments[0]])
    command = group.get_command(context, arguments[0])  # type: ignore[attr-defined]
    if command is None:
        raise ClickException(f"no command {arguments[0]!r}")
    command.make_context(arguments[0], list(arguments[1:]), parent=context)


def _dockerfile_command(path: Path) -> tuple[str, ...] | None:
    """Return the CMD a Dockerfile gives the ``trading-ai`` entry point, if it has one."""
    text = path.read_text(encoding="utf-8")
    if 'ENTRYPOINT ["trading-ai"]' not in text:
        return None
    commands = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    return tuple(yaml.safe_load(commands[-1])) if commands else ()


def _dockerfiles() -> dict[str, Path]:
    return {path.parent.name: path for path in ROOT.glob("services/*/Dockerfile")}


def _dockerfile_lines() -> Iterator[CommandLine]:
    for name, path in sorted(_dockerfiles().items()):
        command = _dockerfile_command(path)
        if command is not None:
            yield CommandLine(f"services/{name}/Dockerfile CMD", command)


def _image_default(image: str) -> tuple[str, ...] | None:
    match = IMAGE.match(image)
    if match is None:
        return None
    path = _dockerfiles().get(match["name"])
    return _dockerfile_command(path) if path is not None else None


def _pod_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec") or {}
    if document.get("kind") == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if document.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [spec["template"]["spec"]]
    return []


def _k8s_lines() -> Iterator[CommandLine]:
    for path in sorted((ROOT / "k8s").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict):
                continue
            for pod in _pod_specs(document):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    default = _image_default(str(container.get("image", "")))
                    if default is None:
                        continue  # a backend's image: not our CLI
                    assert "command" not in container, f"{path}: keep the trading-ai entry point"
                    arguments = tuple(container.get("args", default))
                    where = f"{path.relative_to(ROOT)} {document['metadata']['name']}"
                    yield CommandLine(where, arguments)


def _compose_lines() -> Iterator[CommandLine]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        default = _image_default(str(service.get("image", "")))
        if default is None:
            continue
        command = service.get("command", default)
        arguments = tuple(shlex.split(command) if isinstance(command, str) else command)
        yield CommandLine(f"docker-compose.yml {name}", arguments)


def _deploy_lines() -> Iterator[CommandLine]:
    for path in sorted((ROOT / "deploy").rglob("*")):
        if not path.is_file() or path.suffix in {".json", ".png"}:
            continue
        for match in SHELL_LINE.finditer(path.read_text(encoding="utf-8", errors="replace")):
            yield CommandLine(str(path.relative_to(ROOT)), tuple(shlex.split(match["arguments"])))


COMMAND_LINES = [*_k8s_lines(), *_compose_lines(), *_dockerfile_lines(), *_deploy_lines()]


def test_the_deployment_files_hold_command_lines_to_check() -> None:
    # every service's image, Deployment and compose entry, the CronJob and the one-shot job
    assert len(COMMAND_LINES) >= 20
    places = " ".join(line.where for line in COMMAND_LINES)
    assert "optimizer-cronjob.yaml" in places
    assert "docker-compose.yml optimizer" in places


@pytest.mark.parametrize("line", COMMAND_LINES, ids=lambda line: line.where)
def test_command_line_parses_through_the_real_cli(line: CommandLine) -> None:
    try:
        parse(line.arguments)
    except ClickException as error:
        pytest.fail(f"{line.where}: `trading-ai {' '.join(line.arguments)}`: {error}")


def test_the_nightly_job_runs_the_daily_optimizer_everywhere() -> None:
    nightly = [
        line
        for line in COMMAND_LINES
        if "optimizer-cronjob" in line.where
        or line.where == "docker-compose.yml optimizer"
        or line.where == "services/optimizer/Dockerfile CMD"
    ]
    assert len(nightly) == 3
    assert {line.arguments for line in nightly} == {("optimize", "--daily")}


@pytest.mark.parametrize(
    "arguments",
    [("optimize", "--bogus"), ("optimize", "--trials"), ("backtest",), ("service", "nope"), ()],
)
def test_a_broken_command_line_is_refused(arguments: tuple[str, ...]) -> None:
    with pytest.raises(ClickException):
        parse(arguments)
