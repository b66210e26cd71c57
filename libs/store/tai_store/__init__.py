"""Trading AI Secure storage: ledger (SQLAlchemy + Alembic), outbox relay, hot-state caches.

Typical use::

    store = Store(settings.database_url)
    await store.migrate()
    async with store.transaction() as unit:
        if await unit.inbox.claim("risk", headers.message_id, clock.now()):
            await unit.audit.record("risk", "order.check", order_id, "approved", {...}, now)
            await unit.outbox.add(approval, approval_headers)
"""

from tai_store.cache import Cache, CacheStats, InProcessCache, RedisCache, latest_bar_key
from tai_store.database import (
    Store,
    UnsupportedDatabaseError,
    create_database_if_missing,
    drop_database_if_exists,
    is_database_unavailable,
)
from tai_store.models import USER_ROLES, Base, UtcDateTime
from tai_store.outbox import OutboxRelay, PublishRaw
from tai_store.records import (
    AccountSnapshot,
    Approval,
    AuditEntry,
    Fill,
    Order,
    OrderEvent,
    OutboxMessage,
    Position,
    StoredBar,
    Trade,
    TradingStateChange,
    User,
    UserRole,
)
from tai_store.repositories import RecordNotFoundError, UnitOfWork

__all__ = [
    "USER_ROLES",
    "AccountSnapshot",
    "Approval",
    "AuditEntry",
    "Base",
    "Cache",
    "CacheStats",
    "Fill",
    "InProcessCache",
    "Order",
    "OrderEvent",
    "OutboxMessage",
    "OutboxRelay",
    "Position",
    "PublishRaw",
    "RecordNotFoundError",
    "RedisCache",
    "Store",
    "StoredBar",
    "Trade",
    "TradingStateChange",
    "UnitOfWork",
    "UnsupportedDatabaseError",
    "User",
    "UserRole",
    "UtcDateTime",
    "create_database_if_missing",
    "drop_database_if_exists",
    "is_database_unavailable",
    "latest_bar_key",
]
