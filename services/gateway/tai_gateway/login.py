"""The login flow shared by the API and the console: verify, lock out, audit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tai_core.clock import Clock
from tai_gateway.auth import LockoutPolicy, PasswordHashing, Principal, Role
from tai_gateway.ledger import GatewayLedger

LOGIN_ACTION = "login"


class LoginOutcome(StrEnum):
    """How a login attempt ended."""

    SUCCEEDED = "succeeded"
    INVALID = "invalid_credentials"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The outcome of a login and, on success, who logged in."""

    outcome: LoginOutcome
    principal: Principal | None = None

    @property
    def message(self) -> str:
        """Return what to tell the person logging in (never which part was wrong)."""
        if self.outcome is LoginOutcome.SUCCEEDED:
            return "logged in"
        if self.outcome is LoginOutcome.LOCKED:
            return "account temporarily locked after too many failed logins; try again later"
        return "invalid username or password"


class LoginService:
    """Check credentials, apply the lock-out policy, and audit every attempt."""

    def __init__(
        self,
        ledger: GatewayLedger,
        hashing: PasswordHashing,
        policy: LockoutPolicy,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._hashing = hashing
        self._policy = policy
        self._clock = clock

    async def login(
        self, username: str, password: str, *, channel: str, source: str
    ) -> LoginResult:
        """Return the result of one login attempt through ``channel`` from ``source``."""
        now = self._clock.now()
        user = await self._ledger.find_user(username)
        if user is not None and self._policy.is_locked(user.locked_until, now):
            # Still verify (and discard) so a locked account answers in the usual time.
            self._hashing.verify(user.password_hash, password)
            result = LoginResult(LoginOutcome.LOCKED)
        elif user is None or not self._hashing.verify(
            user.password_hash if user else None, password
        ):
            result = LoginResult(LoginOutcome.INVALID)
            if user is not None:
                updated = await self._ledger.record_login_failure(
                    user.username, now, self._policy.max_failures, self._policy.lockout
                )
                if updated is not None and self._policy.is_locked(updated.locked_until, now):
                    result = LoginResult(LoginOutcome.LOCKED)
        else:
            if user.failed_attempts or user.locked_until is not None:
                await self._ledger.reset_login_failures(user.username)
            result = LoginResult(LoginOutcome.SUCCEEDED, Principal(user.username, Role(user.role)))
        await self._ledger.audit(
            actor=username[:128] or "anonymous",
            action=LOGIN_ACTION,
            subject=channel,
            outcome=result.outcome.value,
            details={"source": source[:128]},
        )
        return result
