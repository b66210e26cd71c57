"""The embedded run's optional inference component: demo model, predictions, same fills."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tai_bus import Binding, Subscription
from tai_cli.embedded import EmbeddedOptions, EmbeddedSystem
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.ml import PredictionMade
from tai_events.topics import ALL_PREDICTIONS
from tai_store.ml_repository import MlModelRepository
from tests.unit.inference.conftest import BUNDLED_EURUSD


async def _replay(directory: Path, data: Path, *, inference: bool) -> tuple[list, list, list]:
    system = EmbeddedSystem(
        EmbeddedOptions(
            data_directory=directory, replay_file=data, serve_console=False, inference=inference
        )
    )
    predictions: list[PredictionMade] = []

    async def collect(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, PredictionMade):
            predictions.append(envelope.message)

    await system.bus.subscribe(
        Subscription(
            queue="test.embedded.predictions", bindings=[Binding(ALL_PREDICTIONS)], handler=collect
        )
    )
    await system.start()
    try:
        report = await system.replay()
        result = await system.result(report)
        async with system.store.transaction() as unit:
            models = await MlModelRepository(unit.session).list()
    finally:
        await system.stop()
    fills = [(fill.side, fill.quantity, fill.price, fill.filled_at) for fill in result.fills]
    return fills, predictions, models


async def test_inference_component_trains_a_demo_model_and_leaves_fills_unchanged(
    tmp_path: Path,
) -> None:
    # Arrange: 400 bundled bars
    data = tmp_path / "EURUSD.csv"
    pd.read_csv(BUNDLED_EURUSD, index_col=0).iloc[:400].to_csv(data)

    # Act
    plain_fills, plain_predictions, plain_models = await _replay(
        tmp_path / "plain", data, inference=False
    )
    fills, predictions, models = await _replay(tmp_path / "ml", data, inference=True)

    # Assert
    assert plain_predictions == []
    assert plain_models == []
    assert fills == plain_fills
    assert len(fills) > 0
    assert [(model.stage, model.algorithm) for model in models] == [("production", "xgboost")]
    assert len(predictions) == 400 - 99
    assert {prediction.model_id for prediction in predictions} == {models[0].model_id}
