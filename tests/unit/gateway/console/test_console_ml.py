"""The ML tab's pure views: why nothing is shown, the model choices, the chosen model."""

from __future__ import annotations

import pandas as pd

from tai_gateway.console.ml import model_options, models_empty_message, registered_model

MODELS = pd.DataFrame(
    [
        {"model_id": "m-1", "stage": "production", "symbol": "EURUSD", "timeframe": "1h"},
        {"model_id": "m-2", "stage": "candidate", "symbol": "GBPUSD", "timeframe": "1h"},
    ]
)


def test_the_empty_message_tells_a_missing_registry_from_an_empty_one() -> None:
    assert "No model registry yet" in str(models_empty_message(None))
    assert "No model is registered yet" in str(models_empty_message(MODELS.head(0)))
    assert models_empty_message(MODELS) is None


def test_every_registered_model_is_a_choice_labelled_with_its_stage() -> None:
    assert model_options(MODELS) == [
        {"label": "m-1 (production)", "value": "m-1"},
        {"label": "m-2 (candidate)", "value": "m-2"},
    ]


def test_the_chosen_model_is_found_by_id_or_reported_missing() -> None:
    chosen = registered_model(MODELS, "m-2")
    assert chosen is not None
    assert chosen["symbol"] == "GBPUSD"
    assert registered_model(MODELS, "m-9") is None
    assert registered_model(None, "m-1") is None
