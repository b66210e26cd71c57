"""Shadow A/B for any strategy: the candidate and production replayed on the same bars."""

from __future__ import annotations

import pytest

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.shadow import ShadowPolicy, compare, run_shadow, shadow_metrics
from tai_strategy.search_spaces import search_space


@pytest.fixture(scope="module")
def bars() -> list[BarClosed]:
    loaded = load_bars(sample_path("EURUSD.csv"), symbol="EURUSD", timeframe=Timeframe.H1)
    return list(loaded.bars[:2_000])


@pytest.mark.parametrize("strategy", ["scalping", "intraday", "swing"])
def test_a_rule_based_strategy_shadows_its_candidate_beside_production(
    strategy: str, bars: list[BarClosed]
) -> None:
    # Arrange: production at the seed parameters, a candidate at another point of the space
    space = search_space(strategy)
    assert space.centre is not None
    production = dict(space.centre)
    candidate = {
        dimension.name: list(dimension.values())[-1]
        if dimension.name.endswith("_atr")
        else production[dimension.name]
        for dimension in space.dimensions
    }
    history, period = bars[:1_200], bars[1_200:]
    costs = CostModel(commission_rate=0.0002)

    # Act
    def replay(parameters: dict[str, object]) -> dict[str, object]:
        result = run_shadow(
            parameters, history, period, cash=100_000, costs=costs, strategy=strategy, leverage=30
        )
        return shadow_metrics(result, 6240.0)

    ours, theirs = replay(candidate), replay(production)
    verdict = compare(ours, theirs, ShadowPolicy(), len(period))

    # Assert: both traded the same bars with the live objects; the verdict says why
    assert ours["bars"] == theirs["bars"] == len(period)
    assert ours != theirs  # wider exits trade differently
    assert verdict.reason
    assert isinstance(verdict.candidate_better, bool)
