"""The API's trading-desk endpoints: strategies, risk limits, models, dead letters, bars."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from gateway_support import ADMIN_PASSWORD, T0, TRADER_PASSWORD, VIEWER_PASSWORD, bearer, token_for
from sqlalchemy import MetaData, Table, inspect

from tai_bus import Binding, InMemoryBus, Subscription
from tai_bus.api import DeadLetter
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import ModelPromoted
from tai_events.risk import RiskLimitsPublished
from tai_events.topics import ALL_CONTROL, CONTROL_EXCHANGE, MODEL_PROMOTED
from tai_gateway.app import GatewayApp
from tai_risk.breakers import describe_breakers
from tai_risk.config import RiskPolicy
from tai_store import Store
from tai_store.research_repository import ModelChallenge, ResearchRepository


async def recorder(bus: InMemoryBus, queue: str, binding: Binding) -> list[Message]:
    received: list[Message] = []

    async def record(envelope: Envelope[Message]) -> None:
        received.append(envelope.message)

    await bus.subscribe(Subscription(queue, [binding], record))
    return received


async def test_trader_enables_a_strategy_with_new_parameters(
    api_client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    # Arrange
    commands = await recorder(bus, "test.control", Binding(ALL_CONTROL, CONTROL_EXCHANGE))
    token = await token_for(api_client, "tom", TRADER_PASSWORD)
    # Act
    response = await api_client.post(
        "/api/control/strategies/sma_cross",
        json={"enabled": False, "parameters": {"fast": 5}, "reason": "news"},
        headers=bearer(token),
    )
    await bus.drain()
    # Assert
    assert response.status_code == 202, response.text
    assert response.json()["command"] == "ConfigureStrategy"
    (command,) = commands
    assert isinstance(command, ConfigureStrategy)
    assert (command.strategy, command.enabled, command.parameters) == (
        "sma_cross",
        False,
        {"fast": 5},
    )
    assert command.requested_by == "tom"


async def test_viewer_cannot_configure_a_strategy(
    api_client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    commands = await recorder(bus, "test.control", Binding(ALL_CONTROL, CONTROL_EXCHANGE))
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.post(
        "/api/control/strategies/sma_cross", json={"enabled": True}, headers=bearer(token)
    )
    await bus.drain()
    assert response.status_code == 403
    assert commands == []


async def test_risk_limits_wait_for_risk_to_announce_them(
    api_client: httpx.AsyncClient,
) -> None:
    token = await token_for(api_client, "tom", TRADER_PASSWORD)
    response = await api_client.get("/api/risk/limits", headers=bearer(token))
    assert response.status_code == 503
    assert "risk.limits" in response.json()["detail"]


async def test_risk_limits_report_drawdown_and_position_usage(
    api_client: httpx.AsyncClient, store: Store, gateway: GatewayApp
) -> None:
    # Arrange: risk announced its limits; equity peaks at 110k and falls to 99k; one 30k
    # EURUSD position
    policy = RiskPolicy(drawdown_halt_pct=10.0)
    gateway.context.live.record_risk_limits(
        RiskLimitsPublished(
            limits=policy.limits().published(),
            breakers=describe_breakers(policy.breakers()),
            published_at=T0,
        )
    )
    async with store.transaction() as unit:
        for hour, equity in enumerate((100_000.0, 110_000.0, 99_000.0)):
            await unit.snapshots.add("paper", T0 + timedelta(hours=hour), 100_000.0, equity)
        await unit.positions.upsert(
            "paper",
            "EURUSD",
            quantity=20_000.0,
            average_price=1.5,
            realized_pnl=0.0,
            last_price=1.5,
            at=T0,
        )
    token = await token_for(api_client, "tom", TRADER_PASSWORD)
    # Act
    response = await api_client.get("/api/risk/limits", headers=bearer(token))
    # Assert
    assert response.status_code == 200
    report = response.json()
    assert report["equity"] == 99_000.0
    assert report["peak_equity"] == 110_000.0
    assert report["drawdown_pct"] == pytest.approx(10.0)
    limits = {limit["name"]: limit for limit in report["limits"]}
    assert limits["drawdown"]["status"] == "BREACHED"
    # 30k notional on 99k equity is 30.3% against a 20% limit
    assert limits["position notional"]["value"] == pytest.approx(30_000 / 99_000 * 100, rel=1e-6)
    assert limits["position notional"]["status"] == "BREACHED"
    assert limits["open positions"]["value"] == 1
    assert report["var"] is None  # two returns are too few for a VaR
    breakers = {(row["breaker"], row["moves_to"]): row for row in report["circuit_breakers"]}
    assert breakers[("drawdown", "HALTED")]["status"] == "TRIPPED"
    assert breakers[("daily_loss", "HALTED")]["lifted_by"] == "next session"
    assert len(breakers) == len(describe_breakers(policy.breakers()))


async def _insert_model(
    store: Store, model_id: str, stage: str, promoted_hours: int | None
) -> None:
    engine = store.sync_engine()
    table = Table("ml_models", MetaData(), autoload_with=engine)
    row = {
        "model_id": model_id,
        "name": "xgb_direction",
        "algorithm": "xgboost",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "stage": stage,
        "feature_set_version": "v1",
        "feature_names": ["rsi_14", "atr_14"],
        "training_start": T0,
        "training_end": T0,
        "data_sha256": "0" * 64,
        "parameters": {},
        "metrics": {"accuracy": 0.55},
        "importances": {"rsi_14": 0.7, "atr_14": 0.3},
        "extras": {},
        "artifact_format": "xgboost-ubj",
        "artifact_sha256": "a" * 64,
        "artifact": b"model",
        "created_at": T0 + timedelta(hours=promoted_hours or 0),
        "promoted_at": None if promoted_hours is None else T0 + timedelta(hours=promoted_hours),
        "needs_retraining": False,
        "retraining_reason": None,
    }
    known = {column.name for column in table.c}
    async with store.transaction() as unit:
        await unit.session.execute(
            table.insert().values({key: value for key, value in row.items() if key in known})
        )


def _has_registry(store: Store) -> bool:
    return bool(inspect(store.sync_engine()).has_table("ml_models"))


async def test_admin_promotes_a_model_and_model_promoted_is_published(
    api_client: httpx.AsyncClient, bus: InMemoryBus, store: Store, gateway: GatewayApp
) -> None:
    if not _has_registry(store):
        pytest.skip("the model registry table is not part of this store")
    # Arrange
    events = await recorder(bus, "test.promoted", Binding(MODEL_PROMOTED))
    await _insert_model(store, "m-old", "production", promoted_hours=1)
    await _insert_model(store, "m-new", "candidate", promoted_hours=None)
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    viewer = await token_for(api_client, "victor", VIEWER_PASSWORD)
    # Act
    refused = await api_client.post(
        "/api/control/models/m-new/promote", json={}, headers=bearer(viewer)
    )
    promoted = await api_client.post(
        "/api/control/models/m-new/promote", json={"reason": "better"}, headers=bearer(admin)
    )
    await bus.drain()
    listing = (await api_client.get("/api/models", headers=bearer(viewer))).json()
    # Assert
    assert refused.status_code == 403
    assert promoted.status_code == 202, promoted.text
    (event,) = events
    assert isinstance(event, ModelPromoted)
    assert (event.model_id, event.previous_model_id, event.promoted_by) == (
        "m-new",
        "m-old",
        "alice",
    )
    stages = {model["model_id"]: model["stage"] for model in listing["models"]}
    assert stages == {"m-new": "production", "m-old": "archived"}


async def test_admin_rolls_back_to_the_previous_production_model(
    api_client: httpx.AsyncClient, store: Store
) -> None:
    if not _has_registry(store):
        pytest.skip("the model registry table is not part of this store")
    await _insert_model(store, "m-old", "archived", promoted_hours=1)
    await _insert_model(store, "m-new", "production", promoted_hours=2)
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.post(
        "/api/control/models/rollback?symbol=EURUSD&timeframe=1h", json={}, headers=bearer(admin)
    )
    assert response.status_code == 202, response.text
    listing = (await api_client.get("/api/models", headers=bearer(admin))).json()
    stages = {model["model_id"]: model["stage"] for model in listing["models"]}
    assert stages == {"m-old": "production", "m-new": "archived"}


async def test_promoting_an_unknown_model_is_not_found(api_client: httpx.AsyncClient) -> None:
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.post(
        "/api/control/models/nope/promote", json={}, headers=bearer(admin)
    )
    assert response.status_code == 404


async def test_admin_requeues_and_discards_dead_letters_a_viewer_cannot_see(
    api_client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    # Arrange: two undecodable messages are dead-lettered by the gateway's stream queue
    for number in (1, 2):
        await bus.publish_raw(
            "tai.events",
            "test.poison",
            b"not json",
            {"message_id": f"poison-{number}", "type": "FillExecuted"},
        )
    await bus.drain()
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    viewer = await token_for(api_client, "victor", VIEWER_PASSWORD)
    # Act
    hidden = await api_client.get("/api/system/dead-letters", headers=bearer(viewer))
    listed = await api_client.get("/api/system/dead-letters", headers=bearer(admin))
    discarded = await api_client.post(
        "/api/system/dead-letters/poison-1/discard", headers=bearer(admin)
    )
    requeued = await api_client.post(
        "/api/system/dead-letters/poison-2/requeue", headers=bearer(admin)
    )
    await bus.drain()
    remaining = await api_client.get("/api/system/dead-letters", headers=bearer(admin))
    # Assert
    assert hidden.status_code == 403
    assert [letter["message_id"] for letter in listed.json()] == ["poison-1", "poison-2"]
    assert {letter["queue"] for letter in listed.json()} == {"tai.gateway.stream"}
    assert all(letter["reason"] for letter in listed.json())
    assert discarded.status_code == 200
    assert requeued.status_code == 200
    # the requeued letter went back to its queue, failed again, and is dead once more
    assert [letter["message_id"] for letter in remaining.json()] == ["poison-2"]


async def test_a_requeue_is_audited_and_one_into_a_vanished_queue_is_refused(
    api_client: httpx.AsyncClient, bus: InMemoryBus, gateway: GatewayApp
) -> None:
    # Arrange: one letter from the gateway's queue, one from a queue that no longer exists
    await bus.publish_raw(
        "tai.events", "test.poison", b"not json", {"message_id": "poison-1", "type": "FillExecuted"}
    )
    await bus.drain()
    bus.dead_letters.append(
        DeadLetter(
            "tai.gone.queue", "tai.events", "test.poison", {"message_id": "gone-1"}, b"x", "r"
        )
    )
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    # Act
    requeued = await api_client.post(
        "/api/system/dead-letters/poison-1/requeue", headers=bearer(admin)
    )
    refused = await api_client.post(
        "/api/system/dead-letters/gone-1/requeue", headers=bearer(admin)
    )
    await bus.drain()
    audit = gateway.context.ledger.audit_log(20)
    # Assert
    assert requeued.status_code == 200
    assert refused.status_code == 409
    assert "tai.gone.queue" in refused.json()["detail"]
    rows = audit[audit["action"] == "dead_letter_requeue"].to_dict("records")
    outcomes = {row["subject"]: (row["outcome"], row["details"]) for row in rows}
    assert outcomes["poison-1"][0] == "done"
    assert outcomes["poison-1"][1]["queue"] == "tai.gateway.stream"
    assert outcomes["gone-1"][0] == "refused"
    # the refused letter is still there to be discarded
    listed = await api_client.get("/api/system/dead-letters", headers=bearer(admin))
    assert "gone-1" in {letter["message_id"] for letter in listed.json()}


async def test_bars_merge_the_ledger_and_the_bus(
    api_client: httpx.AsyncClient, store: Store, gateway: GatewayApp
) -> None:
    # Arrange: one stored bar, one newer bar seen on the bus
    def bar(hour: int) -> BarClosed:
        return BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=T0 + timedelta(hours=hour),
            closed_at=T0 + timedelta(hours=hour + 1),
            open=1.1,
            high=1.2,
            low=1.0,
            close=1.15,
            volume=10.0,
            source="test",
        )

    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many([bar(0)])
    gateway.live.record_bar(bar(1))
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    # Act
    response = await api_client.get(
        "/api/market/bars", params={"symbol": "EURUSD"}, headers=bearer(token)
    )
    # Assert
    assert response.status_code == 200, response.text
    opened = [row["opened_at"] for row in response.json()]
    # newest first: the bar seen on the bus, then the stored one
    assert [json.dumps(value)[:14] for value in opened] == ['"2024-03-04T10', '"2024-03-04T09']


async def test_research_tables_show_runs_without_their_full_reports(
    store: Store, gateway: GatewayApp
) -> None:
    if not inspect(store.sync_engine()).has_table("research_runs"):
        pytest.skip("the research tables are not part of this store")
    table = Table("research_runs", MetaData(), autoload_with=store.sync_engine())
    row = {
        "run_id": "wf-1",
        "kind": "walk_forward",
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "status": "succeeded",
        "started_at": T0,
        "finished_at": T0,
        "configuration": {"folds": 5},
        "summary": {"sharpe": 1.1},
        "report": {"huge": list(range(1000))},
        "error": None,
    }
    known = {column.name for column in table.c}
    async with store.transaction() as unit:
        await unit.session.execute(
            table.insert().values({key: value for key, value in row.items() if key in known})
        )
    tables = gateway.context.ledger.research_tables(10)
    runs = tables["research_runs"]
    assert list(runs["run_id"]) == ["wf-1"]
    assert "report" not in runs.columns
    assert "configuration" not in runs.columns


async def test_research_tab_lists_model_challenges_with_their_reasons(
    store: Store, gateway: GatewayApp
) -> None:
    # Arrange: a challenger rejected after its shadow period
    if not inspect(store.sync_engine()).has_table("research_model_challenges"):
        pytest.skip("the research tables are not part of this store")
    async with store.transaction() as unit:
        await ResearchRepository(unit.session).add_challenge(
            ModelChallenge(
                challenge_id="challenge-1",
                symbol="EURUSD",
                timeframe="1h",
                trigger="feature_drift",
                status="rejected",
                champion_model_id="eurusd-1h-xgboost-a",
                challenger_model_id="eurusd-1h-xgboost-b",
                run_id=None,
                requested_at=T0,
                decided_at=T0,
                reason="challenger shadow Sharpe 0.1 does not beat production 0.4",
                validation={"gates": [{"gate": "deflated_sharpe", "passed": True}]},
                comparison={"bars": 120},
            )
        )
    # Act
    challenges = gateway.context.ledger.research_tables(10)["research_model_challenges"]
    # Assert: who, why and when; the long JSON evidence stays in the ledger
    (row,) = challenges.to_dict("records")
    assert row["status"] == "rejected"
    assert row["reason"].startswith("challenger shadow Sharpe 0.1")
    assert "validation" not in challenges.columns
    assert "comparison" not in challenges.columns
