"""Entry point of ``trading-ai``.

``trading-ai service NAME`` imports only that service: a restarted service is back in seconds,
without loading the research and training tools (optuna, scipy, the ML libraries). Every
other command goes to the command set in ``tai_cli.commands``, where each command imports
only what it uses.
"""

from __future__ import annotations

import importlib
import sys

SERVICES = (
    "ingestion",
    "strategy",
    "risk",
    "execution",
    "gateway",
    "notifier",
    "inference",
    "optimizer",
)


def run_one_service(name: str) -> int:
    """Run one service until it stops; return the exit code (2 for bad configuration)."""
    from tai_core.settings import ConfigurationError  # noqa: PLC0415 - pydantic-settings

    module = importlib.import_module(f"tai_{name}.__main__")
    try:
        module.main()
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    """Run ``trading-ai`` with the command-line arguments."""
    arguments = sys.argv[1:]
    if len(arguments) == 2 and arguments[0] == "service" and arguments[1] in SERVICES:
        sys.exit(run_one_service(arguments[1]))
    from tai_cli.commands import app  # noqa: PLC0415 - the tools load only when asked for

    app()


if __name__ == "__main__":
    main()
