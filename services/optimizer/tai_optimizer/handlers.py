"""Bus <-> model lifecycle: retraining requests start challengers, bars conclude shadows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed
from tai_events.ml import ModelRetrainingRequested
from tai_optimizer.config import OptimizerSettings
from tai_optimizer.lifecycle import LifecycleAction, ModelLifecycle
from tai_store.database import Store
from tai_store.research_repository import ResearchRepository
from tai_telemetry.logging import get_logger

CONSUMER = "optimizer"
log = get_logger(CONSUMER)


@dataclass
class OptimizerContext:
    """What the handlers need, and when each symbol's shadowing challenger is due."""

    settings: OptimizerSettings
    store: Store
    bus: MessageBus
    clock: Clock
    due: dict[str, datetime] = field(default_factory=dict)
    """Symbol -> the earliest end of a shadow period still open."""

    def lifecycle(self, symbol: str) -> ModelLifecycle:
        """Return the lifecycle of a symbol's models."""
        return ModelLifecycle(
            self.settings.lifecycle(symbol), store=self.store, bus=self.bus, clock=self.clock
        )


async def refresh_due(context: OptimizerContext) -> None:
    """Reload when each symbol's open shadow periods end (this timeframe's challenges)."""
    async with context.store.transaction() as unit:
        shadowing = await ResearchRepository(unit.session).shadowing_challenges()
    context.due = {}
    for challenge in shadowing:
        if challenge.timeframe != context.settings.timeframe.value:
            continue
        until = challenge.shadow_until or challenge.requested_at
        current = context.due.get(challenge.symbol)
        context.due[challenge.symbol] = until if current is None else min(current, until)


async def on_retraining_requested(envelope: Envelope[Message], context: OptimizerContext) -> None:
    """Train a challenger for the drifted or expired model, once per request."""
    request = envelope.message
    if not isinstance(request, ModelRetrainingRequested):
        return
    if request.timeframe is not context.settings.timeframe:
        return
    async with context.store.transaction() as unit:
        first = await unit.inbox.claim(CONSUMER, envelope.headers.message_id, context.clock.now())
    if not first:
        return  # a redelivery: the request was acted on
    # Claimed before the (long) training: a redelivery never trains twice. A failed retrain
    # is stored, published and alerted by the lifecycle; the model stays flagged for
    # retraining in the registry and the nightly job retrains it.
    try:
        outcome = await context.lifecycle(request.symbol).retrain(
            request.trigger, request.reason, model_id=request.model_id
        )
    except Exception as error:  # already recorded and published
        log.warning("retraining failed", symbol=request.symbol, error=repr(error))
        return
    log.info(
        "retraining requested",
        symbol=request.symbol,
        trigger=request.trigger.value,
        action=outcome.action,
        reason=outcome.reason,
    )
    if outcome.action == LifecycleAction.SHADOW_STARTED:
        await refresh_due(context)


async def on_bar_closed(envelope: Envelope[Message], context: OptimizerContext) -> None:
    """Conclude a symbol's challenge once a bar closes at or after its shadow period's end."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    due = context.due.get(bar.symbol)
    if due is None or bar.closed_at < due:
        return
    try:
        outcomes = await context.lifecycle(bar.symbol).conclude_due()
    except Exception as error:  # recorded and published; retried on the next bar
        log.warning("concluding a challenge failed", symbol=bar.symbol, error=repr(error))
        return
    for outcome in outcomes:
        log.info("challenge concluded", symbol=bar.symbol, action=outcome.action)
    await refresh_due(context)
