"""Commands registered by name and help line, imported only when they run or show their help.

``trading-ai --help`` lists every command without importing one: a command's module (and the
libraries it needs: pandas, Optuna, XGBoost, SQLAlchemy ...) is imported when that command
is invoked, or asked for its own ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True, slots=True)
class DeferredCommand:
    """A command known by name and help line until it runs.

    ``target`` names ``module:attribute``: a command function, a ``typer.Typer`` (a group of
    commands), or with ``factory`` a callable returning either.
    """

    name: str
    help: str
    target: str
    factory: bool = False

    def load(self) -> typer.Typer:
        """Import the command and return it mounted on a Typer of its own."""
        module_name, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module_name), attribute)
        command = found() if self.factory else found
        if isinstance(command, typer.Typer):
            return command
        single = typer.Typer(add_completion=False)
        single.command(self.name)(command)
        return single


class _Placeholder(TyperCommand):
    """Stands for a deferred command in listings; becomes the real one when it parses."""

    def __init__(self, deferred: DeferredCommand) -> None:
        super().__init__(name=deferred.name, help=deferred.help)
        self.deferred = deferred

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """Import the real command and let it parse the arguments (the group invokes it)."""
        command = typer.main.get_command(self.deferred.load())
        return command.make_context(info_name, args, parent=parent, **extra)


def deferred_group(commands: Sequence[DeferredCommand]) -> type[TyperGroup]:
    """Return a Typer group class that lists ``commands`` and imports each only when used."""

    class DeferredGroup(TyperGroup):
        def __init__(self, **attributes: Any) -> None:
            super().__init__(**attributes)
            for deferred in commands:
                self.commands[deferred.name] = _Placeholder(deferred)

    return DeferredGroup
