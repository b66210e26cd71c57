#!/usr/bin/env bash
# Build /opt/venv for one image, inside the builder stage of a service Dockerfile:
#
#   install-venv.sh PACKAGE_DIR...        e.g. install-venv.sh services/risk services/cli
#
# The local packages installed are the given ones plus every local package they depend on
# (tai-* names found under /build/libs and /build/services), as wheels with --no-deps.
# Third-party packages are exactly the runtime closure of those in requirements.lock,
# installed with --require-hashes. The build tools (uv, hatchling) live in /opt/tools and
# never reach the runtime image.
set -euo pipefail

build=/build
tools=/opt/tools
venv=/opt/venv
(( $# > 0 )) || { echo "usage: install-venv.sh PACKAGE_DIR..." >&2; exit 2; }

python -m venv "$tools"
python "$build/lock-subset.py" "$build/requirements.lock" uv hatchling editables > "$build/tools.lock"
"$tools/bin/pip" install --quiet --require-hashes --no-deps -r "$build/tools.lock"

# local dependency closure: "name directory" lines
python - "$build" "$@" > "$build/local-packages.txt" <<'PYTHON'
import sys
import tomllib
from pathlib import Path

build, wanted = Path(sys.argv[1]), sys.argv[2:]
directories = {}
requirements = {}
for pyproject in [*build.glob("libs/*/pyproject.toml"), *build.glob("services/*/pyproject.toml")]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    directories[project["name"]] = pyproject.parent.relative_to(build).as_posix()
    requirements[project["name"]] = [
        dependency.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
        for dependency in project.get("dependencies", [])
    ]
by_directory = {directory: name for name, directory in directories.items()}
pending = [by_directory[directory.rstrip("/")] for directory in wanted]
selected = set()
while pending:
    name = pending.pop()
    if name not in selected:
        selected.add(name)
        pending.extend(dependency for dependency in requirements[name] if dependency in directories)
for name in sorted(selected):
    print(name, directories[name])
PYTHON

mapfile -t names < <(cut -d' ' -f1 "$build/local-packages.txt")
mapfile -t directories < <(cut -d' ' -f2 "$build/local-packages.txt")
echo "install-venv: local packages: ${names[*]}"

python -m venv --without-pip "$venv"
python "$build/lock-subset.py" "$build/requirements.lock" "${names[@]}" > "$build/runtime.lock"
"$tools/bin/uv" pip sync --quiet --python "$venv/bin/python" --require-hashes --no-cache "$build/runtime.lock"

wheels=$(mktemp -d)
for directory in "${directories[@]}"; do
	"$tools/bin/pip" wheel --quiet --no-deps --no-build-isolation --wheel-dir "$wheels" "$build/$directory"
done
"$tools/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps --no-cache "$wheels"/*.whl
# byte-compile now: the runtime root filesystem is read-only
"$venv/bin/python" -m compileall -q "$venv/lib"
