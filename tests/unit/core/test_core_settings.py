"""Bad configuration fails at start with a message naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tai_core.settings import ConfigurationError, load_settings
from tai_risk.config import RiskSettings
from tai_strategy.config import StrategySettings


def test_missing_secret_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISK_APPROVAL_PRIVATE_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="RISK_APPROVAL_PRIVATE_KEY: Field required"):
        load_settings(RiskSettings)


def test_invalid_value_names_the_setting_and_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGY_QUANTITY", "-5")
    with pytest.raises(ConfigurationError, match="STRATEGY_QUANTITY: Input should be greater"):
        load_settings(StrategySettings)


def test_settings_come_from_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGY_SMA_FAST", "7")
    monkeypatch.setenv("AMQP_URL", "amqp://user:secret@broker:5672/tai")
    settings = load_settings(StrategySettings)
    assert settings.sma_fast == 7
    assert settings.amqp_url == "amqp://user:secret@broker:5672/tai"


def test_service_process_refuses_to_start_without_its_key() -> None:
    # Act: the real command, with the key missing from its environment
    result = subprocess.run(
        [sys.executable, "-m", "tai_cli.main", "service", "risk"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite+aiosqlite:///:memory:"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Assert
    assert result.returncode != 0
    assert "RISK_APPROVAL_PRIVATE_KEY" in result.stderr + result.stdout
