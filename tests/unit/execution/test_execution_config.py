"""Execution settings as deployments set them."""

from __future__ import annotations

import pytest

from tai_core.settings import ConfigurationError, load_settings
from tai_execution.config import ExecutionSettings


def test_broker_ig_with_empty_credentials_from_compose_names_each_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: compose passes unset ${IG_...:-} values as empty strings
    monkeypatch.setenv("EXECUTION_APPROVAL_PUBLIC_KEYS", "pem")
    monkeypatch.setenv("EXECUTION_BROKER", "ig")
    for name in ("EXECUTION_IG_API_KEY", "EXECUTION_IG_IDENTIFIER", "EXECUTION_IG_PASSWORD"):
        monkeypatch.setenv(name, "")
    # Act / Assert
    with pytest.raises(ConfigurationError) as raised:
        load_settings(ExecutionSettings)
    for name in ("EXECUTION_IG_API_KEY", "EXECUTION_IG_IDENTIFIER", "EXECUTION_IG_PASSWORD"):
        assert name in str(raised.value)
