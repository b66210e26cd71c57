"""The ML tab: the model registry, predictions, regimes, importances; promote and roll back."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import control_feedback
from tai_gateway.console.refresh import on_tab_refresh
from tai_gateway.console.views import (
    empty_figure,
    error_alert,
    importances_figure,
    models_view,
    probabilities_figure,
    regime_figure,
    table,
)
from tai_gateway.console.widgets import button, card, loading
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.session import CONSOLE_CHANNEL


def layout(is_admin: bool) -> list[Any]:
    """Return the ML tab's body (promote and roll back for admins only)."""
    children: list[Any] = [
        html.Div(id="ml-error"),
        card("Models", loading("models")),
    ]
    if is_admin:
        children.append(
            card(
                "Promote or roll back (admin)",
                html.Div(
                    className="tai-row",
                    children=[
                        dcc.Dropdown(
                            id="model-select",
                            placeholder="Model to promote",
                            style={"minWidth": "18rem"},
                        ),
                        button("Promote to production", "promote-button", "success"),
                        button("Roll back its symbol", "rollback-button", "warning"),
                    ],
                ),
                html.Div(id="model-feedback"),
            )
        )
    else:
        # The refresh callback fills the model choices for every role: keep a hidden target.
        children.append(dcc.Dropdown(id="model-select", style={"display": "none"}))
    children += [
        html.Div(
            className="tai-grid",
            children=[
                html.Div(className="tai-card", children=[dcc.Graph(id="probabilities-graph")]),
                html.Div(className="tai-card", children=[dcc.Graph(id="importances-graph")]),
            ],
        ),
        html.Div(className="tai-card", children=[dcc.Graph(id="regime-graph")]),
    ]
    return children


def models_empty_message(models: pd.DataFrame | None) -> str | None:
    """Say why no model is shown (no registry table, or no model in it); None when there are."""
    if models is None:
        return "No model registry yet: train a model (trading-ai train) to see it here."
    if models.empty:
        return "No model is registered yet: train one (trading-ai train)."
    return None


def model_options(models: pd.DataFrame) -> list[dict[str, str]]:
    """Return the promote/roll-back choices: every registered model with its stage."""
    return [
        {"label": f"{row['model_id']} ({row['stage']})", "value": row["model_id"]}
        for row in models.to_dict("records")
    ]


def registered_model(models: pd.DataFrame | None, model_id: str) -> dict[Hashable, Any] | None:
    """Return the registry row of ``model_id``, or None when it is not registered."""
    if models is None:
        return None
    return next((row for row in models.to_dict("records") if row["model_id"] == model_id), None)


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register the ML tab's refresh and its admin controls (promote, roll back)."""

    @on_tab_refresh(
        app,
        context,
        "ml",
        dash.Output("models", "children"),
        dash.Output("probabilities-graph", "figure"),
        dash.Output("regime-graph", "figure"),
        dash.Output("importances-graph", "figure"),
        dash.Output("model-select", "options"),
        dash.Output("ml-error", "children"),
    )
    def refresh_ml(_principal: Principal) -> tuple[Any, ...]:
        predictions = context.live.snapshot().predictions
        try:
            models = context.ledger.models()
        except Exception as error:
            return (
                *(dash.no_update,) * 5,
                error_alert(f"Could not read the model registry ({type(error).__name__})."),
            )
        message = models_empty_message(models)
        if models is None or message is not None:
            models_component: Any = html.Div(message, id="models-empty", className="tai-empty")
            options: list[dict[str, str]] = []
            importances = empty_figure("Feature importances", "No model registered", 300)
        else:
            models_component = table(models_view(models), "models-table")
            options = model_options(models)
            importances = importances_figure(models)
        return (
            models_component,
            probabilities_figure(predictions),
            regime_figure(predictions),
            importances,
            options,
            None,
        )

    @app.callback(
        dash.Output("model-feedback", "children"),
        dash.Input("promote-button", "n_clicks"),
        dash.Input("rollback-button", "n_clicks"),
        dash.State("model-select", "value"),
        prevent_initial_call=True,
    )
    def change_model(_promote: int | None, _rollback: int | None, model_id: str | None) -> Any:
        trigger = dash.ctx.triggered_id
        if trigger not in {"promote-button", "rollback-button"}:
            raise PreventUpdate
        if not model_id:
            return error_alert("Pick a model first.")
        if trigger == "promote-button":
            return control_feedback(
                context,
                bridge,
                ControlAction.PROMOTE_MODEL,
                lambda user: context.control.promote_model(
                    user.principal,
                    model_id,
                    reason="promoted in the console",
                    channel=CONSOLE_CHANNEL,
                ),
            )
        chosen = registered_model(context.ledger.models(), model_id)
        if chosen is None:
            return error_alert(f"Model {model_id} is not registered.")
        return control_feedback(
            context,
            bridge,
            ControlAction.ROLLBACK_MODEL,
            lambda user: context.control.rollback_model(
                user.principal,
                str(chosen["symbol"]),
                str(chosen["timeframe"]),
                reason="rolled back in the console",
                channel=CONSOLE_CHANNEL,
            ),
        )
