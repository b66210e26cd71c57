"""Each ``trading-ai`` command imports only what it uses: ``--help`` loads no heavy library.

Every check runs in a fresh interpreter and reads ``sys.modules``: what a command's help
imports, not how long it takes (the time is in ``make bench``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tai_bus.factory import MEMORY_URL
from tai_cli.commands import DEFERRED_COMMANDS, app
from tai_cli.main import SERVICES
from tai_optimizer.research_cli import MEMORY_BUS_URL

HEAVY = (
    "dash",
    "plotly",
    "xgboost",
    "lightgbm",
    "optuna",
    "sklearn",
    "scipy",
    "shap",
    "hmmlearn",
    "pandas",
    "numpy",
    "pyarrow",
    "sqlalchemy",
    "alembic",
    "aio_pika",
    "redis",
    "fastapi",
    "uvicorn",
    "httpx",
    "tai_store",
    "tai_bus",
    "tai_quant",
    "tai_risk",
    "tai_strategy",
    "tai_execution",
    "tai_gateway",
    "tai_optimizer.backtest",
    "tai_cli.embedded",
)
"""Libraries and packages no ``--help`` needs (a prefix matches its submodules too)."""

_HELP_PROBE = """
import json, sys
from tai_cli.main import main
arguments, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["trading-ai", *arguments, "--help"]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
loaded = sorted(
    name for name in heavy if any(m == name or m.startswith(name + ".") for m in sys.modules)
)
print(json.dumps({"code": code, "heavy": loaded}), file=sys.stderr)
"""

COMMANDS = [
    [],
    ["run"],
    ["service"],
    ["contracts"],
    ["broker-setup"],
    ["keys"],
    ["keys", "generate"],
    ["keys", "operator"],
    ["control"],
    ["control", "halt"],
    ["users"],
    ["users", "add"],
    ["users", "passwd"],
    ["users", "set-role"],
    ["users", "remove"],
    ["users", "list"],
    ["users", "sessions", "revoke"],
    ["data"],
    ["data", "import"],
    ["data", "backfill"],
    ["backtest"],
    ["train"],
    ["walk-forward"],
    ["optimize"],
    ["montecarlo"],
]


def _help(arguments: list[str]) -> tuple[dict[str, object], str]:
    result = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE, json.dumps(arguments), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    probe = json.loads(result.stderr.strip().splitlines()[-1])
    return probe, result.stdout


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda arguments: " ".join(arguments) or "-")
def test_help_imports_no_heavy_library(arguments: list[str]) -> None:
    # Act
    probe, output = _help(arguments)
    # Assert
    assert probe["code"] == 0
    assert "Usage" in output
    assert probe["heavy"] == []


def test_every_command_is_covered_by_the_help_checks() -> None:
    # Arrange
    import typer  # noqa: PLC0415

    group = typer.main.get_command(app)
    # Act
    names = set(group.list_commands(None))  # type: ignore[attr-defined]
    # Assert
    assert names == {arguments[0] for arguments in COMMANDS if arguments}


@pytest.mark.parametrize("deferred", DEFERRED_COMMANDS, ids=lambda deferred: deferred.name)
def test_a_deferred_command_is_listed_with_its_own_help_line(deferred: object) -> None:
    # Arrange
    import typer  # noqa: PLC0415

    from tai_cli.lazy import DeferredCommand  # noqa: PLC0415

    assert isinstance(deferred, DeferredCommand)
    group = typer.main.get_command(app)
    listed = group.get_command(None, deferred.name)  # type: ignore[attr-defined]
    # Act
    real = typer.main.get_command(deferred.load())
    # Assert
    assert listed is not None
    assert listed.get_short_help_str(200) == real.get_short_help_str(200)


def test_the_optimizer_bus_default_is_the_memory_bus() -> None:
    assert MEMORY_BUS_URL == MEMORY_URL


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_imports_only_its_own_packages(name: str) -> None:
    # Arrange
    others = [f"tai_{other}" for other in SERVICES if other != name]
    tools = ["tai_optimizer", "tai_cli.commands", "optuna", "xgboost", "lightgbm", "shap"]
    if name == "optimizer":
        # the research service composes the live objects and trains models: it may load the
        # trading services and the ML stack, never the console, the notifier or the CLI
        others = ["tai_gateway", "tai_notifier"]
        tools = ["tai_cli.commands"]
    if name != "gateway":
        tools += ["dash", "plotly", "fastapi"]
    code = (
        f"import json, sys, tai_cli.main, tai_{name}.__main__; "
        f"print(json.dumps(sorted(m for m in {others + tools!r} "
        "if any(n == m or n.startswith(m + '.') for n in sys.modules))))"
    )
    # Act
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    # Assert
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
