"""``trading-ai train``: train a model for a trade plan, register it, print its metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tai_events.market import Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN, TradePlan

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


def _column(metrics: dict[str, Any], *path: str) -> dict[str, Any] | None:
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, dict) else None


def metrics_table(result: TrainingResult) -> Table:
    """Return the model's validation and walk-forward metrics beside its baselines."""
    metrics = result.metrics
    plan = result.record.trade_plan()
    table = Table(
        title=f"model {result.record.model_id} ({metrics.get('kind', result.record.algorithm)})",
        caption=(
            "validation: the final held-out slice (early stopping, then calibration); "
            "walk-forward: purged, embargoed out-of-sample test blocks; baselines scored on "
            "the same samples: a single XGBoost model and the class prior of the training "
            f"labels; trades: the plan {plan.describe()}"
        ),
    )
    table.add_column("metric")
    candidates: list[tuple[str, tuple[str, ...]]] = [
        ("validation", ("validation",)),
        ("walk-forward", ("walk_forward",)),
        ("single model (validation)", ("baselines", "single_model", "validation")),
        ("single model (walk-forward)", ("baselines", "single_model", "walk_forward")),
        ("class prior (validation)", ("baselines", "class_prior", "validation")),
        ("class prior (walk-forward)", ("baselines", "class_prior", "walk_forward")),
    ]
    columns = [
        (label, section)
        for label, path in candidates
        if (section := _column(metrics, *path)) is not None
    ]
    for label, _ in columns:
        table.add_column(label, justify="right")
    rows: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("log-loss", lambda part: part["log_loss"]),
        ("balanced accuracy", lambda part: part["balanced_accuracy"]),
        ("F1 LONG", lambda part: part["f1"]["LONG"]),
        ("F1 SHORT", lambda part: part["f1"]["SHORT"]),
        ("F1 NEUTRAL", lambda part: part["f1"]["NEUTRAL"]),
        ("samples", lambda part: part["samples"]),
        ("trades", lambda part: part["trading"]["trades"]),
        ("trades: hit rate %", lambda part: part["trading"]["hit_rate_pct"]),
        ("trades: return %", lambda part: part["trading"]["total_return_pct"]),
        ("trades: Sharpe", lambda part: part["trading"]["sharpe"]),
        ("trades: max drawdown %", lambda part: part["trading"]["max_drawdown_pct"]),
    ]
    for label, pick in rows:
        table.add_row(label, *(f"{pick(section):.4g}" for _, section in columns))
    return table


def make_train_command(
    default_data: Callable[[str], Path],
) -> Callable[..., None]:
    """Return the ``train`` command; ``default_data(symbol)`` names the bundled bars."""

    def train(
        symbol: Annotated[str, typer.Option(help="instrument to train on")] = "EURUSD",
        timeframe: Annotated[Timeframe, typer.Option(help="bar timeframe")] = Timeframe.H1,
        model: Annotated[
            str, typer.Option(help="xgboost, lightgbm or ensemble (both, stacked)")
        ] = "xgboost",
        per_regime: Annotated[
            bool, typer.Option(help="one model per HMM regime, chosen by the current regime")
        ] = False,
        data: Annotated[
            Path | None, typer.Option(help="OHLCV CSV (default: the bundled bars of the symbol)")
        ] = None,
        database_url: Annotated[
            str, typer.Option(envvar="DATABASE_URL", help="registry database URL")
        ] = DEFAULT_DATABASE_URL,
        folds: Annotated[int, typer.Option(help="walk-forward folds")] = 3,
        take_profit_atr: Annotated[
            float, typer.Option(help="trade plan: target in ATRs (the LONG/SHORT barrier)")
        ] = DEFAULT_TRADE_PLAN.take_profit_atr,
        stop_loss_atr: Annotated[
            float, typer.Option(help="trade plan: stop in ATRs (the opposite barrier)")
        ] = DEFAULT_TRADE_PLAN.stop_loss_atr,
        horizon: Annotated[
            int, typer.Option(help="trade plan: bars before the time exit")
        ] = DEFAULT_TRADE_PLAN.max_horizon_bars,
        threshold: Annotated[
            float, typer.Option(help="trade plan: minimum probability of a traded class")
        ] = DEFAULT_TRADE_PLAN.probability_threshold,
        promote: Annotated[
            bool, typer.Option(help="make the model production (else it stays a candidate)")
        ] = True,
    ) -> None:
        """Train a model for a trade plan, register it and print its metrics and baselines."""
        import asyncio  # noqa: PLC0415

        from tai_core.clock import SystemClock  # noqa: PLC0415
        from tai_inference.training import ALGORITHMS, TrainingOptions, train_model  # noqa: PLC0415

        console = Console()
        if model not in ALGORITHMS:
            console.print(f"[red]--model must be one of {', '.join(ALGORITHMS)}[/]")
            raise typer.Exit(2)
        try:
            plan = TradePlan(
                take_profit_atr=take_profit_atr,
                stop_loss_atr=stop_loss_atr,
                max_horizon_bars=horizon,
                probability_threshold=threshold,
            )
        except ValidationError as error:
            console.print(f"[red]invalid trade plan:[/] {error}")
            raise typer.Exit(2) from error
        path = data or default_data(symbol)
        started = time.perf_counter()
        algorithm = next(name for name in ALGORITHMS if name == model)
        options = TrainingOptions(
            algorithm=algorithm,
            per_regime=per_regime,
            symbol=symbol,
            timeframe=timeframe.value,
            folds=folds,
            plan=plan,
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
        regime_models = result.metrics.get("regime_models")
        if regime_models:
            console.print(
                "regime models: "
                + ", ".join(f"{name}={choice}" for name, choice in regime_models.items())
            )
        top = sorted(result.record.importances.items(), key=lambda item: -item[1])[:5]
        console.print("top features (SHAP): " + ", ".join(f"{n} {v:.3f}" for n, v in top))
        stage = "production" if promote else "candidate"
        console.print(
            f"registered [bold]{result.record.model_id}[/] ({stage}, "
            f"{result.record.artifact_format}, sha256 {result.record.artifact_sha256[:16]}...) "
            f"in {time.perf_counter() - started:.1f}s"
        )

    return train
