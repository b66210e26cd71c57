"""The default system trades as a whole: every strategy of the portfolio opens and closes
positions in the embedded replay of the bundled data (inference and its demo model included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tai_cli.embedded import EmbeddedOptions, run_replay
from tai_strategy.config import DEFAULT_STRATEGIES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_the_default_replay_trades_every_strategy_and_exits_only_what_it_holds(
    tmp_path: Path,
) -> None:
    # Act: the defaults of `trading-ai run`, without the console
    result = await run_replay(
        EmbeddedOptions(data_directory=tmp_path, serve_console=False, inference=True)
    )
    # Assert
    assert result.fills
    engine = create_engine(f"sqlite:///{tmp_path / 'embedded.sqlite'}")
    with engine.connect() as connection:
        filled = {
            str(row[0])
            for row in connection.execute(
                text("SELECT DISTINCT strategy FROM orders WHERE state = 'FILLED'")
            )
        }
        traded = {
            str(row[0]) for row in connection.execute(text("SELECT DISTINCT strategy FROM trades"))
        }
        refused_exits = connection.execute(
            text("SELECT count(*) FROM orders WHERE rejected_by = 'reduce_only'")
        ).scalar_one()
    engine.dispose()
    assert set(DEFAULT_STRATEGIES) <= filled
    assert set(DEFAULT_STRATEGIES) <= traded
    assert refused_exits == 0
