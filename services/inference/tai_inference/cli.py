"""``trading-ai train``: train a model on bundled or given bars, register it, print metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tai_events.market import Timeframe

if TYPE_CHECKING:
    import pandas as pd

    from tai_inference.training import TrainingResult

# The training stack (pandas, XGBoost, LightGBM, SHAP) and the store are imported when the
# command runs: registering it, or its --help, imports none of them.

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.data/embedded.sqlite"


def load_bars(path: Path) -> pd.DataFrame:
    """Read an OHLCV CSV (first column the bar opening time) as the training frame."""
    import pandas as pd  # noqa: PLC0415

    return pd.read_csv(path, index_col=0, parse_dates=True)


async def store_model(database_url: str, result: TrainingResult, *, promote: bool) -> None:
    """Register a trained model (and promote it) in the registry at ``database_url``."""
    from tai_core.clock import SystemClock  # noqa: PLC0415
    from tai_inference.registry import promote_model, register_model  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415

    store = Store(database_url)
    try:
        await store.migrate()
        await register_model(store, result.record)
        if promote:
            await promote_model(
                store, None, result.record.model_id, clock=SystemClock(), promoted_by="cli"
            )
    finally:
        await store.close()


def metrics_table(result: TrainingResult) -> Table:
    """Return the validation and walk-forward metrics as a table."""
    table = Table(
        title=f"model {result.record.model_id}",
        caption=(
            "validation: the final held-out slice (early stopping, then calibration); "
            "walk-forward: purged, embargoed out-of-sample test blocks"
        ),
    )
    table.add_column("metric")
    sections = [name for name in ("validation", "walk_forward") if name in result.metrics]
    for section in sections:
        table.add_column(section.replace("_", "-"), justify="right")
    rows: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("log-loss", lambda part: part["log_loss"]),
        ("balanced accuracy", lambda part: part["balanced_accuracy"]),
        ("F1 LONG", lambda part: part["f1"]["LONG"]),
        ("F1 SHORT", lambda part: part["f1"]["SHORT"]),
        ("F1 NEUTRAL", lambda part: part["f1"]["NEUTRAL"]),
        ("samples", lambda part: part["samples"]),
    ]
    for label, pick in rows:
        table.add_row(label, *(f"{pick(result.metrics[section]):.4g}" for section in sections))
    trading = result.metrics.get("walk_forward", {}).get("trading")
    if trading:
        for key, value in trading.items():
            table.add_row(
                f"signals: {key.replace('_', ' ')}", *([""] * (len(sections) - 1)), f"{value:.4g}"
            )
    return table


def make_train_command(
    default_data: Callable[[str], Path],
) -> Callable[..., None]:
    """Return the ``train`` command; ``default_data(symbol)`` names the bundled bars."""

    def train(
        symbol: Annotated[str, typer.Option(help="instrument to train on")] = "EURUSD",
        timeframe: Annotated[Timeframe, typer.Option(help="bar timeframe")] = Timeframe.H1,
        model: Annotated[str, typer.Option(help="xgboost or lightgbm")] = "xgboost",
        data: Annotated[
            Path | None, typer.Option(help="OHLCV CSV (default: the bundled bars of the symbol)")
        ] = None,
        database_url: Annotated[
            str, typer.Option(envvar="DATABASE_URL", help="registry database URL")
        ] = DEFAULT_DATABASE_URL,
        folds: Annotated[int, typer.Option(help="walk-forward folds")] = 3,
        promote: Annotated[
            bool, typer.Option(help="make the model production (else it stays a candidate)")
        ] = True,
    ) -> None:
        """Train a classifier on triple-barrier labels, register it and print its metrics."""
        import asyncio  # noqa: PLC0415

        from tai_core.clock import SystemClock  # noqa: PLC0415
        from tai_inference.training import ALGORITHMS, TrainingOptions, train_model  # noqa: PLC0415

        console = Console()
        if model not in ALGORITHMS:
            console.print(f"[red]--model must be one of {', '.join(ALGORITHMS)}[/]")
            raise typer.Exit(2)
        path = data or default_data(symbol)
        started = time.perf_counter()
        algorithm = next(name for name in ALGORITHMS if name == model)
        options = TrainingOptions(
            algorithm=algorithm,
            symbol=symbol,
            timeframe=timeframe.value,
            folds=folds,
        )
        result = train_model(load_bars(path), options, created_at=SystemClock().now())
        if database_url.startswith("sqlite") and ":///" in database_url:
            Path(database_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(store_model(database_url, result, promote=promote))
        console.print(metrics_table(result))
        policy = result.record.extras["regime_policy"]
        console.print(
            "regime policy: " + ", ".join(f"{name}={choice}" for name, choice in policy.items())
        )
        top = sorted(result.record.importances.items(), key=lambda item: -item[1])[:5]
        console.print("top features (SHAP): " + ", ".join(f"{n} {v:.3f}" for n, v in top))
        stage = "production" if promote else "candidate"
        console.print(
            f"registered [bold]{result.record.model_id}[/] ({stage}, "
            f"sha256 {result.record.artifact_sha256[:16]}...) in "
            f"{time.perf_counter() - started:.1f}s"
        )

    return train
