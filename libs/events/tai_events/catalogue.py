"""The human-readable topic catalogue (proto/topics.md): one table per message type.

It is rendered from the same JSON Schemas as proto/schemas/, so a field that changes there
changes here. A field's meaning is its docstring in the model when it has one, else the entry
in :data:`FIELD_MEANINGS` (``"Type.field"`` before ``"field"``); a field with neither fails
:func:`render_catalogue`, so no field is published without an explanation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tai_events.base import Command, Message
from tai_events.headers import MessageHeaders
from tai_events.registry import MESSAGE_CLASSES
from tai_events.topics import (
    CONTROL_EXCHANGE,
    EVENTS_EXCHANGE,
    HISTORY_STREAM,
    ORDER_APPROVED,
    PUBLIC_TOPICS,
    ROUTING_KEY_PATTERNS,
)

FIELD_MEANINGS: dict[str, str] = {
    # identity and time
    "order_id": "The order's id, chosen by the strategy; every later event of the order has it.",
    "approval_id": "Id of this approval (execution refuses a second use of it).",
    "fill_id": "The fill's id, unique per broker execution (de-duplicate fills on it).",
    "model_id": "Id of the registered model.",
    "previous_model_id": "The model it replaced as production, if any.",
    "symbol": "Instrument, e.g. EURUSD.",
    "FlattenPositions.symbol": "The position to close; null closes every position.",
    "timeframe": "Bar timeframe: 1m, 5m, 15m, 1h, 4h or 1d.",
    "strategy": "Name of the strategy (snake_case).",
    "opened_at": "Start of the bar (UTC, inclusive).",
    "closed_at": "End of the bar (UTC, exclusive): opened_at plus the timeframe.",
    "bar_closed_at": "Close time of the bar the event was computed from (UTC).",
    "quoted_at": "When the source quoted the prices (UTC).",
    "requested_at": "When it was asked for (UTC).",
    "decided_at": "When the decision was taken (UTC).",
    "issued_at": "When risk signed the approval (UTC).",
    "expires_at": "After this instant (UTC) execution refuses the approval.",
    "changed_at": "When the change happened (UTC).",
    "filled_at": "When the broker filled (UTC).",
    "updated_at": "When the values were computed (UTC).",
    "promoted_at": "When the model became production (UTC).",
    "raised_at": "When the alert was raised (UTC).",
    "signal_time": "Market time of the decision: the close of the bar that triggered it.",
    # prices and quantities
    "open": "First price of the bar.",
    "high": "Highest price of the bar.",
    "low": "Lowest price of the bar.",
    "close": "Last price of the bar.",
    "volume": "Traded volume in the period (0 when the source has none).",
    "bid": "Best bid.",
    "ask": "Best ask.",
    "last": "Last traded price, when the source has one.",
    "price": "Fill price.",
    "commission": "Commission charged for the fill, in account currency.",
    "quantity": "Units (always positive; the side gives the direction).",
    "requested_quantity": "What the strategy asked for; quantity is what risk sized it to.",
    "filled_quantity": "Units filled so far.",
    "remaining_quantity": "Units still to fill.",
    "average_price": "Average entry price of the open position.",
    "mark_price": "Price the position is valued at.",
    "realized_pnl": "Profit or loss booked by closed quantity, in account currency.",
    "unrealized_pnl": "Profit or loss of the open quantity at the mark price.",
    "side": "BUY or SELL.",
    "order_type": "MARKET, LIMIT or STOP.",
    "limit_price": "Worst price accepted by a LIMIT order.",
    "stop_price": "Trigger price of a STOP order.",
    "stop_loss": "Protective stop price of the resulting position, if any.",
    "take_profit": "Profit-taking price of the resulting position, if any.",
    # decisions and states
    "state": "The state now.",
    "OrderStatusChanged.state": "The order's state now (also the routing key's last word).",
    "RiskStateChanged.state": (
        "ACTIVE (every order), REDUCING (only exposure-reducing orders) or HALTED (none)."
    ),
    "previous_state": "The state before the change (null for the first).",
    "reason": "Why, in words for a human.",
    "rule": "The risk rule that decided (e.g. max_daily_loss), machine-readable.",
    "values": "The numbers the rule saw (limit, value, ...), by name.",
    "direction": "LONG, SHORT or FLAT: the position the strategy wants.",
    "confidence": "The strategy's or model's confidence, 0 to 1.",
    "win_probability": "The strategy's estimate that the trade wins, 0 to 1 (used for Kelly).",
    "enabled": "Whether the strategy trades.",
    "ConfigureStrategy.enabled": "Enable (true) or disable (false) it; null leaves it as is.",
    "parameters": "Strategy parameters by name.",
    "equity": "Account equity now, in account currency.",
    "peak_equity": "Highest equity so far (the drawdown's reference).",
    "drawdown_pct": "Fall from peak equity, in percent.",
    "daily_pnl": "Profit or loss since the start of the trading day (UTC).",
    "reduce_only": "Only ever shrink the strategy's position (an exit): never opens or reverses.",
    "breakers": "The circuit breakers: what trips each and the trading state it moves to.",
    "published_at": "When risk published these values (UTC).",
    "account": "The trading account the values are for.",
    # models and predictions
    "model_name": "Name of the model family (e.g. xgb).",
    "feature_set_version": "Version of the features the model was trained on.",
    "probabilities": "Probability of each class (LONG, SHORT, NEUTRAL); they sum to 1.",
    "predicted_class": "The most probable class.",
    "regime": "Market regime the regime detector assigned, if one runs.",
    "artifact_sha256": "SHA-256 of the model artifact (verified before it is loaded).",
    # provenance
    "source": "Where the data came from (e.g. yfinance, ig, replay).",
    "AlertRaised.source": "The component that raised it.",
    "broker": "The broker adapter that filled (paper, ig).",
    "key_id": "Id of risk's signing key (execution may trust several during a rotation).",
    "changed_by": "Who caused the change (risk, or the admin's user name).",
    "requested_by": "The user (or component) who asked.",
    "updated_by": "Who changed it (a user name, or optimizer).",
    "promoted_by": "The user (or optimizer) who promoted it.",
    # alerts
    "severity": "info, warning or critical (also the routing key's last word).",
    "code": "Machine-readable kind of alert (e.g. control_denied).",
    "message": "The alert in words for a human.",
    "details": "Further facts, by name.",
}
"""Meanings of fields without a docstring in their model."""

HEADER_MEANINGS: dict[str, str] = {
    "message_id": "Unique id of this message: de-duplicate on it (delivery is at least once).",
    "type": "The message type (the table's title), e.g. BarClosed.",
    "schema_version": "Version of the type's schema; with type it names the JSON Schema file.",
    "occurred_at": "When the event happened, or the command was issued (UTC, ISO 8601).",
    "correlation_id": "Id shared by every message of one flow (bar -> signal -> order -> fill).",
    "causation_id": "message_id of the message that caused this one, if any.",
    "producer": "The service that published it.",
    "traceparent": "W3C trace context, when tracing is on.",
    "tracestate": "W3C trace state, when tracing is on.",
}


class MissingMeaningError(LookupError):
    """A published field has neither a docstring nor an entry in FIELD_MEANINGS."""


def meaning(message_type: str, field: str, schema: Mapping[str, Any]) -> str:
    """Return what a field means: its schema description, else the glossary's entry."""
    described = schema.get("description")
    if isinstance(described, str) and described:
        return described
    for key in (f"{message_type}.{field}", field):
        if key in FIELD_MEANINGS:
            return FIELD_MEANINGS[key]
    raise MissingMeaningError(
        f"{message_type}.{field} has no meaning: give it a docstring or a FIELD_MEANINGS entry"
    )


def type_name(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> str:
    """Return a JSON Schema type in words: ``number > 0``, ``Side (BUY | SELL)``, ..."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        target = definitions.get(name, {})
        values = target.get("enum")
        return f"{name} ({' | '.join(str(value) for value in values)})" if values else name
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        text = " or ".join(type_name(option, definitions) for option in options)
        return f"{text} or null" if nullable else text
    kind = schema.get("type", "any")
    if kind == "object":
        keys = schema.get("propertyNames")
        key_type = type_name(keys, definitions) if isinstance(keys, Mapping) else "string"
        value = schema.get("additionalProperties", {})
        value_type = type_name(value, definitions) if isinstance(value, Mapping) else "any"
        return f"map of {key_type} to {value_type}"
    if kind == "string" and schema.get("format") == "date-time":
        return "date-time (UTC)"
    bounds = [
        f"{symbol} {schema[key]}"
        for key, symbol in (
            ("exclusiveMinimum", ">"),
            ("minimum", ">="),
            ("maximum", "<="),
        )
        if key in schema
    ]
    if "maxLength" in schema:
        bounds.append(f"at most {schema['maxLength']} characters")
    return f"{kind} {', '.join(bounds)}" if bounds else str(kind)


def is_public(routing_key: str, choices: Mapping[str, Sequence[str]] | None = None) -> bool:
    """Return True when subscribers may read every key of a routing-key template.

    ``{field}`` stands for any word, or for each of ``choices[field]`` (an enum's values).
    """
    keys: list[tuple[str, ...]] = [()]
    for word in routing_key.split("."):
        field = word.strip("{}") if word.startswith("{") else None
        options = [word] if field is None else list((choices or {}).get(field, ["*"]))
        keys = [(*key, option) for key in keys for option in options]
    return all(
        any(_covers(tuple(topic.split(".")), key) for topic in PUBLIC_TOPICS) for key in keys
    )


def _covers(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # a pattern covers a template when every key the template stands for matches the pattern
    if not pattern:
        return not words
    if pattern[0] == "#":
        return True
    if not words or (pattern[0] != "*" and pattern[0] != words[0]):
        return False
    return _covers(pattern[1:], words[1:])


def _enum_choices(schema: Mapping[str, Any]) -> dict[str, list[str]]:
    # routing keys carry enum fields in lower case (order.partially_filled, alert.warning)
    definitions = schema.get("$defs", {})
    choices = {}
    for field, field_schema in schema.get("properties", {}).items():
        reference = str(field_schema.get("$ref", "")).rsplit("/", 1)[-1]
        values = definitions.get(reference, {}).get("enum")
        if values:
            choices[field] = [str(value).lower() for value in values]
    return choices


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(
    message_type: str,
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    meanings: Mapping[str, str] | None = None,
) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    for field, field_schema in schema.get("properties", {}).items():
        text = (
            meanings[field] if meanings is not None else meaning(message_type, field, field_schema)
        )
        rows.append(
            f"| `{field}` | {_cell(type_name(field_schema, definitions))} | "
            f"{'yes' if field in required else 'no'} | {_cell(text)} |"
        )
    return rows


def _section(message_class: type[Message], schema: Mapping[str, Any]) -> list[str]:
    name = message_class.message_type()
    is_command = issubclass(message_class, Command)
    routing_key = ROUTING_KEY_PATTERNS[name]
    if is_command:
        readers = "no: commands are for the system's own services"
    elif routing_key == ORDER_APPROVED:
        readers = "no: approvals go to execution alone (never to subscribers or the history)"
    elif is_public(routing_key, _enum_choices(schema)):
        readers = f"yes (also kept in the stream `{HISTORY_STREAM}`)"
    else:
        readers = "no: not among the public topics"
    summary = (message_class.__doc__ or "").strip().splitlines()[0]
    return [
        f"## {name}",
        "",
        summary,
        "",
        f"- exchange `{CONTROL_EXCHANGE if is_command else EVENTS_EXCHANGE}`, "
        f"routing key `{routing_key}`",
        f"- schema `schemas/{name}.v{message_class.schema_version}.json` "
        f"(header `schema_version` = {message_class.schema_version})",
        f"- readable by subscribers: {readers}",
        "",
        *_table(name, schema, schema.get("$defs", {})),
        "",
    ]


def render_catalogue(schemas: Mapping[type[Message], Mapping[str, Any]]) -> str:
    """Return proto/topics.md: the headers, then one table per event, then per command."""
    headers = MessageHeaders.model_json_schema()
    lines = [
        "# Topic catalogue",
        "",
        "Generated by `make contracts` from the schemas in `schemas/`; do not edit.",
        "Events (past tense) are published on the topic exchange "
        f"`{EVENTS_EXCHANGE}`, commands (imperative) on `{CONTROL_EXCHANGE}`; the body is "
        "JSON (UTF-8), `content_type` `application/json`. In a routing key, `{name}` stands "
        "for that field's value, e.g. `market.bar.1h.EURUSD`.",
        "",
        "## Headers (every message)",
        "",
        *_table("headers", headers, headers.get("$defs", {}), HEADER_MEANINGS),
        "",
    ]
    ordered = sorted(
        MESSAGE_CLASSES,
        key=lambda cls: (issubclass(cls, Command), ROUTING_KEY_PATTERNS[cls.message_type()]),
    )
    for message_class in ordered:
        lines += _section(message_class, schemas[message_class])
    return "\n".join(lines).rstrip("\n") + "\n"
