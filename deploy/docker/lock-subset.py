#!/usr/bin/env python3
"""Print the part of requirements.lock that some packages need at run time.

The lock pins every dependency of every package in the repository plus the development
tools. An image needs only the runtime closure of its own packages: this walks the lock's
``# via`` annotations (which name, for each pin, the packages that require it) from the
given roots and prints those pins with their hashes, so the image installs them with
``--require-hashes`` and nothing else. Standard library only: it runs before any install.

    python deploy/docker/lock-subset.py requirements.lock tai-events tai-risk ... > runtime.lock
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")


@dataclass(frozen=True)
class Pin:
    """One pinned requirement of the lock: its text (with hashes) and who requires it."""

    name: str
    text: str
    required_by: frozenset[str]


def normalise(name: str) -> str:
    """Return a distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Pin]:
    """Parse a ``uv pip compile --generate-hashes`` lock into pins by normalised name."""
    pins: dict[str, Pin] = {}
    name: str | None = None
    requirement: list[str] = []
    parents: set[str] = set()

    def flush() -> None:
        if name is not None:
            pins[name] = Pin(name, "\n".join(requirement), frozenset(parents))

    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            flush()
            name, requirement, parents = normalise(match.group(1)), [line], set()
            continue
        stripped = line.strip()
        if not stripped:
            # a blank line ends the pins (uv then lists the packages it left out)
            flush()
            name = None
            continue
        if name is None:
            continue
        if stripped.startswith("--hash="):
            requirement.append(line)
        elif stripped.startswith("#"):
            # "# via a" or, over several lines, "# via" then "#   a"
            words = stripped.lstrip("#").strip()
            words = words.removeprefix("via").strip()
            if words and not words.startswith("-r") and not words.startswith("-c"):
                parents.add(normalise(words))
    flush()
    return pins


def runtime_closure(pins: dict[str, Pin], roots: Iterable[str]) -> list[Pin]:
    """Return the pins reachable from ``roots`` (local or locked packages), sorted by name."""
    needed = {normalise(root) for root in roots}
    changed = True
    while changed:
        changed = False
        for pin in pins.values():
            if pin.name not in needed and pin.required_by & needed:
                needed.add(pin.name)
                changed = True
    return sorted((pins[name] for name in needed if name in pins), key=lambda pin: pin.name)


def main(arguments: list[str]) -> int:
    """Print the closure of the roots given after the lock file's path."""
    if len(arguments) < 2:
        print("usage: lock-subset.py LOCK ROOT [ROOT ...]", file=sys.stderr)
        return 2
    pins = parse_lock(Path(arguments[0]).read_text(encoding="utf-8"))
    closure = runtime_closure(pins, arguments[1:])
    print(f"# runtime subset of {arguments[0]} for: {' '.join(arguments[1:])}")
    for pin in closure:
        print(pin.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
