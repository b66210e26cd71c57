"""Notifier settings: secrets have no defaults and missing ones are named."""

from __future__ import annotations

import pytest

from tai_core.settings import ConfigurationError, load_settings
from tai_notifier.config import NotifierSettings


def test_missing_telegram_and_smtp_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "SMTP_HOST", "MAIL_FROM", "MAIL_TO"):
        monkeypatch.delenv(f"NOTIFIER_{name}", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(NotifierSettings)
    message = str(raised.value)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "SMTP_HOST", "MAIL_FROM", "MAIL_TO"):
        assert f"NOTIFIER_{name}" in message


def test_settings_come_from_the_environment_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_TELEGRAM_BOT_TOKEN", "123:secret-token")
    monkeypatch.setenv("NOTIFIER_TELEGRAM_CHAT_ID", "-1001")
    monkeypatch.setenv("NOTIFIER_SMTP_HOST", "smtp.example.test")
    monkeypatch.setenv("NOTIFIER_SMTP_USERNAME", "")
    monkeypatch.setenv("NOTIFIER_MAIL_FROM", "tai@example.test")
    monkeypatch.setenv("NOTIFIER_MAIL_TO", '["desk@example.test", "risk@example.test"]')
    settings = load_settings(NotifierSettings)
    assert settings.mail_to == ["desk@example.test", "risk@example.test"]
    assert settings.smtp_username is None
    assert "secret-token" not in repr(settings)
    assert settings.telegram_bot_token.get_secret_value() == "123:secret-token"
