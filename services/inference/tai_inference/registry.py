"""Model registry operations: register a trained model, promote it (publishing the event)."""

from __future__ import annotations

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted
from tai_store.database import Store
from tai_store.ml_repository import MlModelRepository, ModelRecord


async def register_model(store: Store, record: ModelRecord) -> None:
    """Store a trained model as a candidate (its artifact's SHA-256 is checked first)."""
    async with store.transaction() as unit:
        await MlModelRepository(unit.session).add(record)


async def promote_model(
    store: Store, bus: MessageBus | None, model_id: str, *, clock: Clock, promoted_by: str
) -> ModelPromoted:
    """Make a model production (archiving the previous one) and publish ``model.promoted``.

    Without a bus (offline CLI use) the event is only returned; running inference services
    then pick the model up from the registry when they next start.
    """
    async with store.transaction() as unit:
        promotion = await MlModelRepository(unit.session).promote(model_id, clock.now())
    record = promotion.model
    event = ModelPromoted(
        model_id=record.model_id,
        model_name=record.name,
        symbol=record.symbol,
        timeframe=Timeframe(record.timeframe),
        artifact_sha256=record.artifact_sha256,
        previous_model_id=promotion.previous_model_id,
        promoted_at=record.promoted_at or clock.now(),
        promoted_by=promoted_by,
    )
    if bus is not None:
        await bus.publish(event)
    return event
