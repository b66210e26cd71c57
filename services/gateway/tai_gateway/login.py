"""The login flow shared by the API and the console: throttle, verify, audit.

Every attempt costs the same whether the account exists or not (the password is always
checked, against a decoy hash for unknown names, and the same throttle rows are written),
and every refusal says the same thing, so neither the time nor the answer names real
accounts. Throttling is per (account, source) and per source (see ``tai_gateway.throttle``).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from tai_core.clock import Clock
from tai_gateway.auth import PasswordHashing, Principal, Role
from tai_gateway.ledger import GatewayLedger
from tai_gateway.throttle import LoginThrottle, account_key, source_key

LOGIN_ACTION = "login"


class LoginOutcome(StrEnum):
    """How a login attempt ended."""

    SUCCEEDED = "succeeded"
    INVALID = "invalid_credentials"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The outcome of a login and, on success, who logged in."""

    outcome: LoginOutcome
    principal: Principal | None = None
    retry_after: timedelta | None = None
    """How long a throttled caller must wait."""

    @property
    def retry_after_seconds(self) -> int:
        """Return the wait in whole seconds (at least 1) for a Retry-After header."""
        if self.retry_after is None:
            return 0
        return max(1, math.ceil(self.retry_after.total_seconds()))

    @property
    def message(self) -> str:
        """Return what to tell the person logging in (never which part was wrong)."""
        if self.outcome is LoginOutcome.SUCCEEDED:
            return "logged in"
        if self.outcome is LoginOutcome.THROTTLED:
            return (
                "too many failed sign-ins from this address; "
                f"try again in {self.retry_after_seconds} s"
            )
        return "invalid username or password"


class LoginService:
    """Check credentials, apply the throttle, and audit every attempt."""

    def __init__(
        self,
        ledger: GatewayLedger,
        hashing: PasswordHashing,
        throttle: LoginThrottle,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._hashing = hashing
        self._throttle = throttle
        self._clock = clock

    async def login(
        self, username: str, password: str, *, channel: str, source: str
    ) -> LoginResult:
        """Return the result of one login attempt through ``channel`` from ``source``."""
        now = self._clock.now()
        keys = [account_key(username, source), source_key(source)]
        user = await self._ledger.find_user(username)
        wait = await self._throttle.wait(keys, now)
        if wait is not None:
            result = LoginResult(LoginOutcome.THROTTLED, retry_after=wait)
        else:
            # Always verify, against a decoy hash for an unknown name, off the event loop.
            valid = await asyncio.to_thread(
                self._hashing.verify, user.password_hash if user else None, password
            )
            if valid and user is not None:
                await self._throttle.clear(keys[0])
                result = LoginResult(
                    LoginOutcome.SUCCEEDED, Principal(user.username, Role(user.role))
                )
            else:
                await self._throttle.record_failure(keys, now)
                result = LoginResult(LoginOutcome.INVALID)
        details: dict[str, object] = {"source": source[:128]}
        if result.retry_after is not None:
            details["retry_after_seconds"] = result.retry_after_seconds
        await self._ledger.audit(
            actor=username[:128] or "anonymous",
            action=LOGIN_ACTION,
            subject=channel,
            outcome=result.outcome.value,
            details=details,
        )
        return result
