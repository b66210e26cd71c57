"""Notifier service: route alerts, fills and risk-state changes to Telegram and e-mail."""
