"""Layout pieces every tab uses: cards, buttons, inputs, loading placeholders."""

from __future__ import annotations

from typing import Any

from dash import dcc, html


def card(title: str, *children: Any, card_id: str | None = None) -> Any:
    """Return a titled card around ``children``."""
    heading = html.H2(title, className="tai-card-title")
    if card_id is None:
        return html.Div(className="tai-card", children=[heading, *children])
    return html.Div(className="tai-card", id=card_id, children=[heading, *children])


def loading(component_id: str) -> Any:
    """Return an empty target that shows a spinner while its callback runs."""
    return dcc.Loading(html.Div(id=component_id), type="dot", delay_show=400)


def button(label: str, button_id: str, kind: str = "primary") -> Any:
    """Return a Bootstrap button of ``kind`` (primary, danger, success, warning)."""
    return html.Button(label, id=button_id, className=f"btn btn-{kind}", n_clicks=0)


def text_input(input_id: str, placeholder: str, value: str | None = None) -> Any:
    """Return a one-line text box (at most 2,000 characters)."""
    return dcc.Input(
        id=input_id,
        type="text",
        placeholder=placeholder,
        value=value,
        maxLength=2000,
        className="form-control",
    )
