"""scripts/audit-dependencies: a vulnerability fails, an unreachable service never passes."""

from __future__ import annotations

import json
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "audit-dependencies"
LOCK = "pip-audit==2.10.1 \\\n    --hash=sha256:00\nhttpx==0.28.1 \\\n    --hash=sha256:11\n"


def _load() -> ModuleType:
    loader = SourceFileLoader("audit_dependencies", str(SCRIPT))
    spec = spec_from_loader(loader.name, loader)
    assert spec is not None
    module = module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up while building
    loader.exec_module(module)
    return module


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = _load()
    monkeypatch.setattr(module, "probe", lambda _name, _version, _timeout: None)
    return module


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK)
    return path


def _fake_pip_audit(tmp_path: Path, report: dict[str, object]) -> Path:
    """Write a pip-audit stand-in that records its argv and writes ``report`` to --output."""
    script = tmp_path / "pip-audit"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        "argv = sys.argv[1:]\n"
        f"pathlib.Path({str(tmp_path / 'argv.json')!r}).write_text(json.dumps(argv))\n"
        f"pathlib.Path(argv[argv.index('--output') + 1]).write_text({json.dumps(report)!r})\n"
    )
    script.chmod(0o755)
    return script


CLEAN = {"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]}
VULNERABLE = {
    "dependencies": [
        {
            "name": "httpx",
            "version": "0.28.1",
            "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["0.28.2"], "aliases": []}],
        }
    ]
}
NOT_FOUND = {
    "dependencies": [
        {"name": "httpx", "skip_reason": "Dependency not found on PyPI: httpx (0.28.1)"}
    ]
}


def test_a_clean_audit_passes_with_the_locked_strict_flags(
    audit: ModuleType, lock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _fake_pip_audit(tmp_path, CLEAN)
    assert audit.main([str(lock), "--pip-audit", str(fake)]) == 0
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["--requirement", str(lock)]
    assert {"--require-hashes", "--disable-pip", "--no-deps"} <= set(argv)
    assert "1 dependencies audited, no known vulnerabilities" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["fail", "skip"])
def test_a_known_vulnerability_fails_in_every_mode(
    audit: ModuleType, lock: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _fake_pip_audit(tmp_path, VULNERABLE)
    status = audit.main([str(lock), "--pip-audit", str(fake), "--when-unreachable", mode])
    assert status == audit.EXIT_VULNERABLE
    assert "GHSA-xxxx (fixed in 0.28.2)" in capsys.readouterr().out


def test_a_dependency_that_could_not_be_audited_is_not_a_pass(
    audit: ModuleType, lock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _fake_pip_audit(tmp_path, NOT_FOUND)
    status = audit.main([str(lock), "--pip-audit", str(fake), "--when-unreachable", "skip"])
    assert status == audit.EXIT_INCOMPLETE
    assert "INCOMPLETE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mode", "expected_status", "verdict"),
    [("fail", 2, "pip-audit FAILED"), ("skip", 0, "pip-audit SKIPPED")],
)
def test_an_unreachable_service_is_reported_loudly_and_never_as_a_pass(
    lock: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    expected_status: int,
    verdict: str,
) -> None:
    module = _load()
    monkeypatch.setattr(module, "probe", lambda *_args: "pypi.org answered HTTP 404")
    fake = _fake_pip_audit(tmp_path, CLEAN)
    status = module.main([str(lock), "--pip-audit", str(fake), "--when-unreachable", mode])
    out = capsys.readouterr().out
    assert status == expected_status
    assert f"{verdict}: the vulnerability service is unreachable" in out
    assert "NO dependency" in out
    assert "no known vulnerabilities" not in out
    assert not (tmp_path / "argv.json").exists()  # pip-audit's empty "pass" is never consulted
