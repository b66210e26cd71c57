"""Pure notifier logic: message text, severity routing, de-duplication and throttling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tai_events.alerts import AlertRaised, Severity
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted
from tai_events.orders import FillExecuted, Side
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_events.risk import RiskStateChanged, TradingState
from tai_notifier.notifications import (
    MAXIMUM_TEXT_LENGTH,
    Channel,
    Decision,
    Deduplicator,
    Notification,
    NotificationPolicy,
    SeverityRouting,
    Throttle,
    from_alert,
    from_fill,
    from_model_promotion,
    from_research_run,
    from_risk_state,
)

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def policy(throttle: int = 2, window_seconds: float = 300.0) -> NotificationPolicy:
    return NotificationPolicy(
        SeverityRouting.from_lists(
            telegram=[Severity.WARNING, Severity.CRITICAL], email=[Severity.CRITICAL]
        ),
        Deduplicator(timedelta(seconds=window_seconds)),
        Throttle(throttle, timedelta(minutes=1)),
    )


def note(severity: Severity, key: str = "k") -> Notification:
    return Notification(severity=severity, title="title", body="body", key=key)


def test_halt_is_critical_and_names_both_states() -> None:
    # Arrange
    change = RiskStateChanged(
        state=TradingState.HALTED,
        previous_state=TradingState.ACTIVE,
        reason="kill switch",
        equity=99_000.0,
        peak_equity=100_000.0,
        drawdown_pct=1.0,
        daily_pnl=-1000.0,
        changed_at=T0,
        changed_by="alice",
    )
    # Act
    notification = from_risk_state(change)
    # Assert
    assert notification.severity is Severity.CRITICAL
    assert "ACTIVE -> HALTED" in notification.title
    assert "kill switch (by alice)" in notification.body


def test_fill_text_has_side_quantity_symbol_and_price() -> None:
    fill = FillExecuted(
        fill_id="f-1",
        order_id="o-1",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=10_000.0,
        price=1.0875,
        commission=2.0,
        filled_at=T0,
        broker="paper",
    )
    notification = from_fill(fill, Severity.INFO)
    assert notification.title == "Fill BUY 10000 EURUSD @ 1.0875"
    assert notification.key == "fill:f-1"


def test_alert_details_are_listed_in_the_body() -> None:
    alert = AlertRaised(
        severity=Severity.WARNING,
        source="execution",
        code="forged_approval",
        message="approval signature invalid",
        details={"order_id": "o-9"},
        raised_at=T0,
    )
    notification = from_alert(alert)
    assert notification.title == "execution: forged_approval"
    assert "order_id: o-9" in notification.body


def test_each_severity_goes_to_its_configured_channels() -> None:
    routing = policy().routing
    assert routing.channels_for(Severity.INFO) == frozenset()
    assert routing.channels_for(Severity.WARNING) == {Channel.TELEGRAM}
    assert routing.channels_for(Severity.CRITICAL) == {Channel.TELEGRAM, Channel.EMAIL}


def test_a_delivered_notification_is_a_duplicate_inside_the_window_only() -> None:
    # Arrange
    rules = policy()
    warning = note(Severity.WARNING)
    rules.delivered(Channel.TELEGRAM, warning, T0)
    # Act
    inside = rules.decide(warning, T0 + timedelta(seconds=299))
    after = rules.decide(warning, T0 + timedelta(seconds=300))
    # Assert
    assert inside == {Channel.TELEGRAM: Decision.DUPLICATE}
    assert after == {Channel.TELEGRAM: Decision.SEND}


def test_an_undelivered_notification_is_not_a_duplicate() -> None:
    rules = policy()
    warning = note(Severity.WARNING)
    rules.decide(warning, T0)
    assert rules.decide(warning, T0) == {Channel.TELEGRAM: Decision.SEND}


def test_warnings_beyond_the_rate_are_throttled_until_the_minute_passes() -> None:
    rules = policy(throttle=2)
    decisions = [rules.decide(note(Severity.WARNING, f"k{n}"), T0) for n in range(3)]
    assert [d[Channel.TELEGRAM] for d in decisions] == [
        Decision.SEND,
        Decision.SEND,
        Decision.THROTTLED,
    ]
    later = rules.decide(note(Severity.WARNING, "k9"), T0 + timedelta(minutes=1))
    assert later == {Channel.TELEGRAM: Decision.SEND}


def test_critical_notifications_are_never_throttled() -> None:
    rules = policy(throttle=1)
    decisions = [rules.decide(note(Severity.CRITICAL, f"c{n}"), T0) for n in range(5)]
    assert all(set(d.values()) == {Decision.SEND} for d in decisions)


@given(st.text(max_size=10_000))
def test_text_never_exceeds_the_telegram_limit(body: str) -> None:
    assert len(Notification(Severity.INFO, "title", body, "k").text) <= MAXIMUM_TEXT_LENGTH


@given(
    st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=60),
    st.integers(1, 5),
)
def test_throttle_never_allows_more_than_the_limit_in_a_minute(
    offsets: list[int], limit: int
) -> None:
    throttle = Throttle(limit, timedelta(minutes=1))
    times = sorted(T0 + timedelta(seconds=offset) for offset in offsets)
    allowed = [at for at in times if throttle.allow(Channel.EMAIL, at)]
    for at in allowed:
        in_window = [other for other in allowed if at <= other < at + timedelta(minutes=1)]
        assert len(in_window) <= limit


BOTH = frozenset({Channel.TELEGRAM, Channel.EMAIL})


def _run(status: ResearchRunStatus, outcome: str | None, **extra: object) -> ResearchRunFinished:
    return ResearchRunFinished.model_validate(
        {
            "run_id": "run-1",
            "kind": "retrain",
            "subject": "eurusd-1h-xgboost-1",
            "symbol": "EURUSD",
            "status": status,
            "outcome": outcome,
            "finished_at": T0,
            **extra,
        }
    )


def test_a_promotion_by_the_optimizer_goes_to_telegram_and_email_with_its_reason() -> None:
    # Arrange
    run = _run(ResearchRunStatus.SUCCEEDED, "promoted", reason="challenger Sharpe 1.2 beats 0.4")
    # Act
    notification = from_research_run(run, BOTH)
    decisions = policy().decide(notification, T0)
    # Assert: INFO, which the default routing sends nowhere, yet both channels get it
    assert notification.severity is Severity.INFO
    assert decisions == {Channel.EMAIL: Decision.SEND, Channel.TELEGRAM: Decision.SEND}
    assert "promoted" in notification.title
    assert "beats 0.4" in notification.text


def test_a_failed_run_goes_to_both_channels_with_its_error() -> None:
    run = _run(ResearchRunStatus.FAILED, None, error="ValueError('only 0 stored bars')")
    notification = from_research_run(run, BOTH)
    assert notification.severity is Severity.WARNING
    assert set(policy().decide(notification, T0)) == set(BOTH)
    assert "only 0 stored bars" in notification.text
    assert "failed" in notification.title


def test_a_routine_outcome_follows_the_severity_routing() -> None:
    notification = from_research_run(_run(ResearchRunStatus.SUCCEEDED, "shadow_started"), BOTH)
    assert notification.channels is None
    assert policy().decide(notification, T0) == {}  # INFO is routed nowhere by default


def test_a_rollback_by_a_person_is_notified_but_the_optimizers_promotion_only_once() -> None:
    def promotion(by: str) -> ModelPromoted:
        return ModelPromoted(
            model_id="eurusd-1h-xgboost-0",
            model_name="xgboost_triple_barrier",
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            artifact_sha256="0" * 64,
            previous_model_id="eurusd-1h-xgboost-1",
            promoted_at=T0,
            promoted_by=by,
        )

    by_admin = from_model_promotion(promotion("admin"), BOTH)
    assert by_admin is not None
    assert by_admin.channels == BOTH
    assert "replacing eurusd-1h-xgboost-1" in by_admin.text
    assert from_model_promotion(promotion("optimizer:run-1"), BOTH) is None
