"""The REST API: health, readiness, metrics, tokens, ledger reads and admin controls."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Annotated, Any

import pandas as pd
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import Name, ScalarValue, Symbol
from tai_events.market import Timeframe
from tai_gateway.auth import InvalidTokenError, Principal, Role
from tai_gateway.backtests import (
    BacktestBusyError,
    BacktestRequest,
    BacktestRequestError,
    BacktestRun,
)
from tai_gateway.breakglass import break_glass_router
from tai_gateway.context import GatewayContext
from tai_gateway.control import (
    ANONYMOUS,
    ControlAction,
    ControlDeniedError,
    ControlReceipt,
    UnknownModelError,
)
from tai_gateway.guards import INVALID_REQUEST, StrictJsonRoute, control_action_of, safe_errors
from tai_gateway.login import LoginOutcome
from tai_gateway.operations import (
    DEFAULT_QUEUES,
    DeadLetterNotFoundError,
    DeadLetterView,
    QueueStats,
)
from tai_gateway.risk_view import circuit_breakers, risk_report

API_CHANNEL = "api"
MAXIMUM_ROWS = 1_000
DEFAULT_ROWS = 100

RowLimit = Annotated[int, Query(ge=1, le=MAXIMUM_ROWS, description="Rows to return")]


class TokenResponse(BaseModel):
    """An issued bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: Role


class ControlRequest(BaseModel):
    """Why a halt or resume is requested."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class FlattenRequest(ControlRequest):
    """Flatten one symbol, or every position when ``symbol`` is omitted."""

    symbol: Symbol | None = None


class StrategyConfiguration(BaseModel):
    """Enable or disable a strategy and/or change its parameters."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    parameters: dict[Name, ScalarValue] = Field(default_factory=dict, max_length=32)
    reason: str = Field(default="", max_length=2000)


class BacktestRunRequest(BaseModel):
    """Start a backtest on one of the research data files."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="sma_cross", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    data_file: str = Field(min_length=1, max_length=128)
    cash: float = Field(default=100_000.0, gt=0, le=1e12)
    commission: float = Field(default=0.0002, ge=0, lt=0.1)
    parameters: dict[Name, float] = Field(default_factory=dict, max_length=32)


class ControlResponse(BaseModel):
    """The command published for a control request."""

    action: str
    command: str
    message_id: str


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a DataFrame as JSON-ready records (ISO timestamps, NaN as null)."""
    if frame.empty:
        return []
    loaded: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", date_format="iso", date_unit="us")
    )
    return loaded


def client_address(request: Request) -> str:
    """Return the caller's address (a trusted proxy's X-Forwarded-For, else the peer)."""
    return request.client.host if request.client else "unknown"


def get_context(request: Request) -> GatewayContext:
    """Return the gateway context the application was built with."""
    context: GatewayContext = request.app.state.context
    return context


Context = Annotated[GatewayContext, Depends(get_context)]
_bearer = OAuth2PasswordBearer(tokenUrl="/api/token")


def enforce_rate_limit(context: GatewayContext, key: str) -> None:
    """Take a token from ``key``'s bucket or raise 429 with Retry-After."""
    decision = context.limiter.allow(key)
    if not decision.allowed:
        context.metrics.rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="rate limit exceeded",
            headers={"Retry-After": str(max(1, round(decision.retry_after_seconds)))},
        )


async def session_principal(context: GatewayContext, token: str) -> Principal:
    """Return the principal of a bearer token's live session, or raise InvalidTokenError.

    The token's signature and expiry are checked first (cheap, no I/O), then its session
    and the user's current role are read from the store: a revoked session, a removed user
    or a changed role take effect on the next request.
    """
    claims = context.tokens.verify(token)
    principal = await context.sessions.principal(claims.session_id, claims.username)
    if principal is None:
        raise InvalidTokenError("session ended (signed out, revoked, or the account changed)")
    return principal


async def current_principal(context: Context, token: Annotated[str, Depends(_bearer)]) -> Principal:
    """Return the bearer token's principal (401 when invalid), rate limited per user."""
    try:
        principal = await session_principal(context, token)
    except InvalidTokenError as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid bearer token: {error}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    enforce_rate_limit(context, f"user:{principal.username}")
    return principal


Authenticated = Annotated[Principal, Depends(current_principal)]
_optional_bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


class ControlCaller:
    """A dependency like ``current_principal`` that also audits and alerts on a 401.

    A control call without valid credentials is an attack signal, not a stale page: the
    refusal is written to the audit log and raises a (rate-limited) alert. The caller's
    address is rate limited first, so refusals cannot flood the audit table either. The
    route's action is known from this dependency, so a malformed body sent to a control
    route is audited as a refused action too (see ``tai_gateway.guards``).
    """

    def __init__(self, action: ControlAction) -> None:
        self.action = action

    async def __call__(
        self,
        context: Context,
        request: Request,
        token: Annotated[str | None, Depends(_optional_bearer)],
    ) -> Principal:
        """Return the caller's principal, or audit, alert and raise 401."""
        try:
            if not token:
                raise InvalidTokenError("no bearer token")
            principal = await session_principal(context, token)
        except InvalidTokenError as error:
            source = client_address(request)
            enforce_rate_limit(context, f"ip:{source}")
            context.metrics.control_requests.labels(self.action.value, "unauthenticated").inc()
            await context.control.record_unauthenticated(
                self.action, channel=API_CHANNEL, source=source, error=str(error)
            )
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"invalid bearer token: {error}",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        enforce_rate_limit(context, f"user:{principal.username}")
        return principal


def control_caller(action: ControlAction) -> ControlCaller:
    """Return the dependency authenticating (and auditing) callers of ``action``."""
    return ControlCaller(action)


HaltCaller = Annotated[Principal, Depends(control_caller(ControlAction.HALT))]
ResumeCaller = Annotated[Principal, Depends(control_caller(ControlAction.RESUME))]
FlattenCaller = Annotated[Principal, Depends(control_caller(ControlAction.FLATTEN))]
StrategyCaller = Annotated[Principal, Depends(control_caller(ControlAction.CONFIGURE_STRATEGY))]
PromoteCaller = Annotated[Principal, Depends(control_caller(ControlAction.PROMOTE_MODEL))]
RollbackCaller = Annotated[Principal, Depends(control_caller(ControlAction.ROLLBACK_MODEL))]
RequeueCaller = Annotated[Principal, Depends(control_caller(ControlAction.REQUEUE_DEAD_LETTER))]
DiscardCaller = Annotated[Principal, Depends(control_caller(ControlAction.DISCARD_DEAD_LETTER))]
BacktestCaller = Annotated[Principal, Depends(control_caller(ControlAction.RUN_BACKTEST))]


async def authorize(
    context: GatewayContext, principal: Principal, action: ControlAction, subject: str
) -> None:
    """Raise 403 unless the role allows ``action``; a refusal is audited and alerted."""
    try:
        await context.control.authorize(principal, action, channel=API_CHANNEL, subject=subject)
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None


def require_admin(principal: Authenticated) -> Principal:
    """Return the principal when it is an admin, else raise 403."""
    if not principal.role.allows(Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def _operations_router() -> APIRouter:
    router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)

    @router.get("/health")
    def health() -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(context: Context) -> JSONResponse:
        """Report whether the store is reachable and the bus subscription is running."""
        checks = await context.readiness()
        is_ready = all(checks.values())
        return JSONResponse(
            {"ready": is_ready, "checks": checks},
            status_code=status.HTTP_200_OK if is_ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @router.get("/metrics")
    def metrics(context: Context, _: AdminPrincipal) -> Response:
        """Expose the Prometheus metrics to admins (scrapers use the ops port, not this one).

        The registry carries account figures (equity, exposure, drawdown, P&L), so on the
        public API port it needs an admin token like the rest of the ledger.
        """
        return Response(context.telemetry.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router


def _auth_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["auth"], route_class=StrictJsonRoute)

    @router.post("/token")
    async def issue_token(
        context: Context,
        request: Request,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> TokenResponse:
        """Exchange a username and password for a bearer token (OAuth2 password flow)."""
        source = client_address(request)
        enforce_rate_limit(context, f"ip:{source}")
        result = await context.login.login(
            form.username, form.password, channel=API_CHANNEL, source=source
        )
        context.metrics.logins.labels(API_CHANNEL, result.outcome.value).inc()
        if result.outcome is LoginOutcome.THROTTLED:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=result.message,
                headers={"Retry-After": str(result.retry_after_seconds)},
            )
        if result.outcome is not LoginOutcome.SUCCEEDED or result.principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=result.message,
                headers={"WWW-Authenticate": "Bearer"},
            )
        session = await context.sessions.open(
            result.principal.username,
            channel=API_CHANNEL,
            source=source,
            lifetime=context.tokens.lifetime,
        )
        issued = context.tokens.issue(
            result.principal.username, session.session_id, session.expires_at
        )
        lifetime = issued.expires_at - context.clock.now()
        return TokenResponse(
            access_token=issued.token,
            expires_in=int(lifetime.total_seconds()),
            role=result.principal.role,
        )

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(context: Context, principal: Authenticated, request: Request) -> Response:
        """End every session of the caller, API tokens and console cookies alike."""
        ended = await context.sessions.revoke_user(principal.username)
        await context.ledger.audit(
            actor=principal.username,
            action="logout",
            subject=API_CHANNEL,
            outcome="sessions_revoked",
            details={"sessions": ended, "source": client_address(request)[:128]},
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def _ledger_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["ledger"], route_class=StrictJsonRoute)

    @router.get("/fills")
    def fills(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest fills, newest first."""
        return records(context.ledger.fills(limit))

    @router.get("/positions")
    def positions(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's current positions."""
        return records(context.ledger.positions())

    @router.get("/orders")
    def orders(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest orders."""
        return records(context.ledger.orders(limit))

    @router.get("/equity")
    def equity(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's equity curve."""
        return records(context.ledger.equity_curve())

    @router.get("/risk/state")
    def risk_state(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return the trading state: the latest seen on the bus, else the stored one."""
        live = context.live.snapshot().risk
        if live is not None:
            return {"source": "live", **live.model_dump(mode="json")}
        stored = context.ledger.trading_state()
        if stored is not None:
            return {
                "source": "store",
                "state": stored.state,
                "previous_state": stored.previous_state,
                "reason": stored.reason,
                "changed_by": stored.changed_by,
                "changed_at": stored.changed_at.isoformat(),
            }
        return {"source": "none", "state": None}

    @router.get("/trades")
    def trades(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest closed trades, newest first."""
        return records(context.ledger.trades(limit))

    @router.get("/risk/limits")
    def risk_limits(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return each limit's usage, VaR/CVaR, drawdown and the circuit breakers."""
        report = risk_report(
            context.ledger.equity_curve(),
            context.ledger.positions(),
            context.risk_limits,
            context.clock.now(),
        )
        return {**report.as_dict(), "circuit_breakers": circuit_breakers(report)}

    @router.get("/risk/rejections")
    def rejections(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest rejected orders with risk's reason."""
        return records(context.ledger.rejections(limit))

    @router.get("/market/bars")
    def bars(
        context: Context,
        _: Authenticated,
        symbol: Annotated[Symbol, Query(description="Instrument, e.g. EURUSD")],
        timeframe: Annotated[Timeframe, Query(description="Bar timeframe")] = Timeframe.H1,
        limit: RowLimit = DEFAULT_ROWS,
    ) -> list[dict[str, Any]]:
        """Return stored bars (oldest first) and any newer bars seen on the bus."""
        stored = context.ledger.bars(symbol, timeframe.value, limit)
        seen = [
            {
                "opened_at": bar.opened_at,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
            }
            for bar in context.live.snapshot().bar_history
            if bar.symbol == symbol and bar.timeframe is timeframe
        ]
        merged = pd.concat([stored, pd.DataFrame(seen, columns=stored.columns)])
        merged["opened_at"] = pd.to_datetime(merged["opened_at"], utc=True)
        merged = merged.drop_duplicates("opened_at", keep="last").sort_values("opened_at")
        return records(merged.tail(limit))

    @router.get("/strategies")
    def strategies(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return each strategy's realised P&L and its latest parameters seen on the bus."""
        pnl = {row["strategy"]: row for row in records(context.ledger.strategy_pnl())}
        live = {update.strategy: update for update in context.live.snapshot().strategies}
        names = sorted(set(pnl) | set(live))
        return [
            {
                "strategy": name,
                "enabled": live[name].enabled if name in live else None,
                "parameters": live[name].parameters if name in live else {},
                "orders": pnl.get(name, {}).get("orders", 0),
                "trades": pnl.get(name, {}).get("trades", 0),
                "net_pnl": pnl.get(name, {}).get("net_pnl", 0.0),
                "win_rate_pct": pnl.get(name, {}).get("win_rate_pct"),
            }
            for name in names
        ]

    @router.get("/models")
    def models(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return the model registry (metadata, metrics, importances; never artifacts)."""
        frame = context.ledger.models()
        if frame is None:
            return {"registry": False, "models": []}
        return {"registry": True, "models": records(frame)}

    @router.get("/audit")
    def audit(
        context: Context, _: AdminPrincipal, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest audit rows (admins only)."""
        return records(context.ledger.audit_log(limit))

    return router


async def _control(
    context: GatewayContext,
    principal: Principal,
    action: ControlAction,
    reason: str,
    symbol: str | None = None,
) -> ControlResponse:
    # The role check runs inside ControlService so that refusals are audited too.
    try:
        receipt = await context.control.request(
            principal, action, reason=reason, channel=API_CHANNEL, symbol=symbol
        )
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except Exception:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"could not publish {action.value}; the bus is unavailable",
        ) from None
    context.metrics.control_requests.labels(action.value, "published").inc()
    return ControlResponse(
        action=receipt.action.value, command=receipt.command, message_id=receipt.message_id
    )


def _control_router() -> APIRouter:
    router = APIRouter(prefix="/api/control", tags=["control"], route_class=StrictJsonRoute)
    accepted = status.HTTP_202_ACCEPTED

    @router.post("/halt", status_code=accepted)
    async def halt(
        context: Context, principal: HaltCaller, body: ControlRequest
    ) -> ControlResponse:
        """Halt trading (kill switch); admins only."""
        return await _control(context, principal, ControlAction.HALT, body.reason)

    @router.post("/resume", status_code=accepted)
    async def resume(
        context: Context, principal: ResumeCaller, body: ControlRequest
    ) -> ControlResponse:
        """Resume trading; admins only."""
        return await _control(context, principal, ControlAction.RESUME, body.reason)

    @router.post("/flatten", status_code=accepted)
    async def flatten(
        context: Context, principal: FlattenCaller, body: FlattenRequest
    ) -> ControlResponse:
        """Close one symbol's position or every position; admins only."""
        return await _control(context, principal, ControlAction.FLATTEN, body.reason, body.symbol)

    @router.post("/strategies/{strategy}", status_code=accepted)
    async def configure_strategy(
        context: Context,
        principal: StrategyCaller,
        strategy: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
        body: StrategyConfiguration,
    ) -> ControlResponse:
        """Enable, disable or tune a strategy (publishes ConfigureStrategy); traders and admins."""
        return await _guarded(
            context,
            ControlAction.CONFIGURE_STRATEGY,
            context.control.configure_strategy(
                principal,
                strategy,
                enabled=body.enabled,
                parameters=dict(body.parameters),
                reason=body.reason,
                channel=API_CHANNEL,
            ),
        )

    @router.post("/models/{model_id}/promote", status_code=accepted)
    async def promote_model(
        context: Context,
        principal: PromoteCaller,
        model_id: Annotated[str, Path(min_length=1, max_length=128)],
        body: ControlRequest,
    ) -> ControlResponse:
        """Make a model production and announce ModelPromoted; admins only."""
        return await _guarded(
            context,
            ControlAction.PROMOTE_MODEL,
            context.control.promote_model(
                principal, model_id, reason=body.reason, channel=API_CHANNEL
            ),
        )

    @router.post("/models/rollback", status_code=accepted)
    async def rollback_model(
        context: Context,
        principal: RollbackCaller,
        symbol: Annotated[Symbol, Query()],
        timeframe: Annotated[Timeframe, Query()],
        body: ControlRequest,
    ) -> ControlResponse:
        """Re-promote the previous production model of a symbol; admins only."""
        return await _guarded(
            context,
            ControlAction.ROLLBACK_MODEL,
            context.control.rollback_model(
                principal, symbol, timeframe.value, reason=body.reason, channel=API_CHANNEL
            ),
        )

    return router


async def _guarded(
    context: GatewayContext,
    action: ControlAction,
    call: Coroutine[Any, Any, ControlReceipt],
) -> ControlResponse:
    try:
        receipt = await call
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except UnknownModelError as error:
        context.metrics.control_requests.labels(action.value, "unknown").inc()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    except Exception:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"could not publish {action.value}; the bus is unavailable",
        ) from None
    context.metrics.control_requests.labels(action.value, "published").inc()
    return ControlResponse(
        action=receipt.action.value, command=receipt.command, message_id=receipt.message_id
    )


def _run_response(run: BacktestRun) -> dict[str, Any]:
    return asdict(run)


def _research_router() -> APIRouter:
    router = APIRouter(prefix="/api/backtests", tags=["research"], route_class=StrictJsonRoute)

    @router.get("")
    def list_backtests(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return backtest runs started here, newest first."""
        return [_run_response(run) for run in context.backtests.list(limit)]

    @router.post("", status_code=status.HTTP_202_ACCEPTED)
    async def run_backtest(
        context: Context, principal: BacktestCaller, body: BacktestRunRequest
    ) -> dict[str, Any]:
        """Start ``trading-ai backtest`` on a research data file; traders and admins."""
        await authorize(context, principal, ControlAction.RUN_BACKTEST, body.data_file)
        request = BacktestRequest(
            strategy=body.strategy,
            data_file=body.data_file,
            cash=body.cash,
            commission=body.commission,
            parameters=tuple(sorted(body.parameters.items())),
        )
        try:
            run = await context.backtests.start(request, principal.username)
        except BacktestRequestError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None
        except BacktestBusyError as error:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
        await context.ledger.audit(
            actor=principal.username,
            action="run_backtest",
            subject=run.run_id,
            outcome="started",
            details={"channel": API_CHANNEL, "strategy": body.strategy, "data": body.data_file},
        )
        return _run_response(run)

    @router.get("/data-files")
    def data_files(context: Context, _: Authenticated) -> list[str]:
        """Return the data files a backtest may be started on."""
        return context.backtests.data_files()

    @router.get("/{run_id}")
    def get_backtest(
        context: Context, _: Authenticated, run_id: Annotated[str, Path(max_length=64)]
    ) -> dict[str, Any]:
        """Return a run and, once it succeeded, its full report."""
        run = context.backtests.get(run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such backtest run")
        return {**_run_response(run), "report": context.backtests.report(run_id)}

    return router


def _system_router() -> APIRouter:
    router = APIRouter(prefix="/api/system", tags=["system"], route_class=StrictJsonRoute)

    @router.get("/queues")
    async def queues(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return each watched queue's depth and consumer count."""
        try:
            stats: list[QueueStats] = await context.operations.queue_stats(DEFAULT_QUEUES)
        except Exception as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"broker unavailable ({type(error).__name__})",
            ) from None
        return [asdict(item) for item in stats]

    @router.get("/dead-letters")
    async def dead_letters(
        context: Context, _: AdminPrincipal, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the dead letters with their reasons (admins only)."""
        try:
            letters: list[DeadLetterView] = await context.operations.dead_letters(limit)
        except Exception as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"broker unavailable ({type(error).__name__})",
            ) from None
        return [asdict(letter) for letter in letters]

    @router.post("/dead-letters/{message_id}/requeue")
    async def requeue_dead_letter(
        context: Context,
        principal: RequeueCaller,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> dict[str, Any]:
        """Requeue a dead letter to its original exchange (admins only)."""
        action = ControlAction.REQUEUE_DEAD_LETTER
        await authorize(context, principal, action, message_id)
        return await _settle(context, principal, action, message_id)

    @router.post("/dead-letters/{message_id}/discard")
    async def discard_dead_letter(
        context: Context,
        principal: DiscardCaller,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> dict[str, Any]:
        """Discard a dead letter for good (admins only)."""
        action = ControlAction.DISCARD_DEAD_LETTER
        await authorize(context, principal, action, message_id)
        return await _settle(context, principal, action, message_id)

    return router


async def _settle(
    context: GatewayContext, principal: Principal, action: ControlAction, message_id: str
) -> dict[str, Any]:
    operation = (
        context.operations.requeue
        if action is ControlAction.REQUEUE_DEAD_LETTER
        else context.operations.discard
    )
    try:
        letter = await operation(message_id)
    except DeadLetterNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such dead letter") from None
    await context.ledger.audit(
        actor=principal.username,
        action=action.value,
        subject=message_id,
        outcome="done",
        details={"channel": API_CHANNEL, "reason": letter.reason[:500]},
    )
    return asdict(letter)


async def _audit_invalid_control(
    context: GatewayContext, request: Request, action: ControlAction, errors: list[dict[str, Any]]
) -> bool:
    """Audit a control call refused for its body; return False when the caller is rate limited."""
    source = client_address(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    actor = ANONYMOUS
    if scheme.lower() == "bearer" and token:
        try:
            actor = (await session_principal(context, token.strip())).username
        except InvalidTokenError:
            actor = ANONYMOUS
    if not context.limiter.allow(f"user:{actor}" if actor != ANONYMOUS else f"ip:{source}").allowed:
        context.metrics.rate_limited.inc()
        return False
    context.metrics.control_requests.labels(action.value, INVALID_REQUEST).inc()
    await context.ledger.audit(
        actor=actor,
        action=action.value,
        subject=request.url.path[:256],
        outcome=INVALID_REQUEST,
        details={
            "channel": API_CHANNEL,
            "source": source[:128],
            "errors": [error["type"] for error in errors],
        },
    )
    return True


def _install_guards(api: FastAPI, context: GatewayContext) -> None:
    """Answer malformed requests with safe 4xx (audited on control routes)."""

    async def on_validation_error(request: Request, error: Exception) -> Response:
        if not isinstance(error, RequestValidationError):
            raise error
        errors = safe_errors(error.errors())
        action = control_action_of(request.scope.get("route"))
        if action is not None and not await _audit_invalid_control(
            context, request, action, errors
        ):
            return JSONResponse({"detail": "rate limit exceeded"}, status_code=429)
        return JSONResponse({"detail": errors}, status_code=422)

    api.add_exception_handler(RequestValidationError, on_validation_error)


def create_api(context: GatewayContext) -> FastAPI:
    """Build the FastAPI application over the shared gateway context.

    Bodies are capped (``GATEWAY_API_MAX_BODY_BYTES``, 413 before they are read), JSON is
    parsed strictly (no NaN/Infinity) and validation errors never echo huge values.
    """
    api = FastAPI(
        title="Trading AI Secure gateway",
        version="1",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        max_body_size=context.settings.api_max_body_bytes,
    )
    api.state.context = context
    _install_guards(api, context)
    for router in (
        _operations_router(),
        _auth_router(),
        _ledger_router(),
        _control_router(),
        _research_router(),
        _system_router(),
        break_glass_router(context),
    ):
        api.include_router(router)
    return api
