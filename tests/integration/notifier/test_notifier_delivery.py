"""The notifier against a local SMTP server (aiosmtpd) and a local stub of the Telegram Bot API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tai_bus import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.alerts import AlertRaised, Severity
from tai_events.orders import FillExecuted, Side
from tai_events.risk import RiskStateChanged, TradingState
from tai_notifier.app import NotifierApp
from tai_notifier.config import NotifierSettings

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
TOKEN = "123456:integration-test-token"
CHAT = "-100200300"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """Collect the messages the local SMTP server receives."""

    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@dataclass
class BotApi:
    """A stub of the Bot API's sendMessage: fail the first ``failures`` calls with 502."""

    failures: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def send_message(self, request: Request) -> JSONResponse:
        self.paths.append(request.url.path)
        if self.failures:
            self.failures -= 1
            return JSONResponse({"ok": False, "description": "Bad Gateway"}, status_code=502)
        body = await request.json()
        self.received.append(body)
        return JSONResponse({"ok": True, "result": {"message_id": len(self.received)}})


@dataclass
class Harness:
    app: NotifierApp
    bus: InMemoryBus
    mailbox: Mailbox
    bot: BotApi


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    mailbox, bot = Mailbox(), BotApi()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    api_port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(
                routes=[Route("/bot{token}/sendMessage", bot.send_message, methods=["POST"])]
            ),
            host="127.0.0.1",
            port=api_port,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag, no event
        await asyncio.sleep(0.01)
    settings = NotifierSettings.model_validate(
        {
            "telegram_bot_token": TOKEN,
            "telegram_chat_id": CHAT,
            "telegram_api_url": f"http://127.0.0.1:{api_port}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "mail_from": "tai@example.test",
            "mail_to": ["desk@example.test"],
            "telegram_severities": ["info", "warning", "critical"],
            "email_severities": ["critical"],
            "retry_initial_seconds": 0.01,
            "retry_max_seconds": 0.05,
        }
    )
    clock = FakeClock(T0)
    bus = InMemoryBus("test", clock=clock)
    from tai_telemetry import Telemetry  # noqa: PLC0415

    app = NotifierApp(settings, bus=bus, clock=clock, telemetry=Telemetry(service="notifier"))
    await app.start()
    await bus.start()
    yield Harness(app, bus, mailbox, bot)
    await bus.close()
    await app.stop()
    server.should_exit = True
    await serving
    smtp.stop()


def halted() -> RiskStateChanged:
    return RiskStateChanged(
        state=TradingState.HALTED,
        previous_state=TradingState.ACTIVE,
        reason="kill switch",
        equity=100_000.0,
        peak_equity=100_000.0,
        drawdown_pct=0.0,
        daily_pnl=0.0,
        changed_at=T0,
        changed_by="alice",
    )


async def test_halt_goes_to_telegram_and_email(harness: Harness) -> None:
    # Act
    await harness.bus.publish(halted())
    await harness.bus.drain()
    # Assert
    assert [body["chat_id"] for body in harness.bot.received] == [CHAT]
    assert "ACTIVE -> HALTED" in harness.bot.received[0]["text"]
    assert harness.bot.paths == [f"/bot{TOKEN}/sendMessage"]
    assert len(harness.mailbox.messages) == 1
    mail = harness.mailbox.messages[0]
    assert mail["To"] == "desk@example.test"
    assert mail["Subject"] == "[Trading AI CRITICAL] Trading state ACTIVE -> HALTED"


async def test_fill_goes_to_telegram_only_and_a_redelivered_fill_is_sent_once(
    harness: Harness,
) -> None:
    fill = FillExecuted(
        fill_id="f-1",
        order_id="o-1",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.SELL,
        quantity=5000.0,
        price=1.09,
        commission=1.0,
        filled_at=T0,
        broker="paper",
    )
    await harness.bus.publish(fill)
    await harness.bus.publish(fill)  # at-least-once: the same fill can arrive twice
    await harness.bus.drain()
    assert [body["text"].splitlines()[0] for body in harness.bot.received] == [
        "[INFO] Fill SELL 5000 EURUSD @ 1.09"
    ]
    assert harness.mailbox.messages == []


async def test_bot_api_errors_are_retried_until_the_message_goes_through(
    harness: Harness,
) -> None:
    harness.bot.failures = 2
    await harness.bus.publish(
        AlertRaised(
            severity=Severity.WARNING,
            source="execution",
            code="broker_disconnected",
            message="IG stream dropped",
            raised_at=T0,
        )
    )
    await harness.bus.drain()
    assert len(harness.bot.paths) == 3
    assert len(harness.bot.received) == 1
    assert "broker_disconnected" in harness.bot.received[0]["text"]
