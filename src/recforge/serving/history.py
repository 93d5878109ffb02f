"""A user's recent events, kept for the next request: in process, or in Redis so several service
processes share them.

Entries are raw item ids (not indices), so a reloaded model with another vocabulary still reads
them. Each user keeps the latest ``max_len`` events, most recent first. An entry is an
:class:`Event`: the pair ``(item_id, value)`` that also carries the event's ``kind`` (click, view,
like, rating) and ``time`` (unix seconds), which a context-aware model reads
(``two-tower-context``); the others use the pair.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from typing import Any, ClassVar, Protocol, runtime_checkable

from recforge.errors import ConfigError

__all__ = ["Event", "History", "MemoryHistory", "RedisHistory", "make_history"]


class Event(tuple):  # noqa: SLOT001 - the extra fields live in the instance dict
    """One recent event: the pair ``(item_id, value)`` (it unpacks, compares and hashes as that
    pair) with the event's ``kind`` and ``time`` (unix seconds) as attributes (None: unknown)."""

    kind: str | None
    time: float | None

    def __new__(cls, item_id: Any, value: float, kind: str | None = None, time: float | None = None) -> Event:
        self = super().__new__(cls, (item_id, value))
        self.kind = kind
        self.time = time
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self[0], self[1], self.kind, self.time)

    def __repr__(self) -> str:
        return f"Event({self[0]!r}, {self[1]!r}, kind={self.kind!r}, time={self.time!r})"


@runtime_checkable
class History(Protocol):
    """Where the service keeps each user's recent events ``(item_id, value)``, most recent first.

    ``blocking`` says whether a call waits on the network: the service then runs it in a worker
    thread instead of on the event loop.
    """

    blocking: ClassVar[bool]

    def push(self, user_id: str, item_id: str, value: float = 1.0, kind: str | None = None,
             time: float | None = None) -> None:
        """Record one event as the user's most recent (``kind`` and ``time`` optional)."""

    def recent(self, user_id: str, n: int | None = None) -> list[tuple[str, float]]:
        """The latest events as :class:`Event` pairs ``(item_id, value)``, most recent first (at most ``n``)."""

    def clear(self, user_id: str | None = None) -> None:
        """Forget one user's events, or everyone's."""

    def ping(self) -> bool:
        """Whether the store answers."""

    def describe(self) -> str:
        """A short name for ``/healthz``."""


class MemoryHistory:
    """Recent events per user in this process (bounded: at most ``max_users`` users, LRU)."""

    blocking: ClassVar[bool] = False

    def __init__(self, max_len: int = 50, max_users: int = 1_000_000) -> None:
        if max_len < 1 or max_users < 1:
            raise ConfigError("history max_len and max_users must be positive")
        self.max_len = max_len
        self.max_users = max_users
        self._data: OrderedDict[str, deque[tuple[str, float]]] = OrderedDict()
        self._lock = threading.Lock()

    def push(self, user_id: str, item_id: str, value: float = 1.0, kind: str | None = None,
             time: float | None = None) -> None:
        with self._lock:
            q = self._data.get(user_id)
            if q is None:
                q = self._data[user_id] = deque(maxlen=self.max_len)
                if len(self._data) > self.max_users:
                    self._data.popitem(last=False)
            else:
                self._data.move_to_end(user_id)
            q.appendleft(Event(str(item_id), float(value), kind, None if time is None else float(time)))

    def recent(self, user_id: str, n: int | None = None) -> list[tuple[str, float]]:
        """The latest events ``(item_id, value)``, most recent first."""
        q = self._data.get(user_id)
        if not q:
            return []
        items = list(q)
        return items if n is None else items[:n]

    def clear(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._data.clear()
            else:
                self._data.pop(user_id, None)

    def ping(self) -> bool:
        return True

    def describe(self) -> str:
        return "memory"


class RedisHistory:
    """Recent events per user in Redis lists ``<prefix><user_id>`` (LPUSH + LTRIM, with a TTL).

    Args:
        url: ``redis://host:port/db``.
        max_len: Events kept per user.
        prefix: Key prefix (lets several services or tests share one Redis).
        ttl_seconds: Expiry of a user's list after their last event (0: never).
        client: A ready Redis client (tests); default: one for ``url``.
    """

    blocking: ClassVar[bool] = True

    def __init__(self, url: str, max_len: int = 50, prefix: str = "recforge:history:", ttl_seconds: int = 7 * 86400,
                 client: Any = None) -> None:
        from recforge._optional import require

        redis = require("redis", purpose="shared recent history")
        self.client = client or redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.max_len = max_len
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.url = url

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}{user_id}"

    def push(self, user_id: str, item_id: str, value: float = 1.0, kind: str | None = None,
             time: float | None = None) -> None:
        key = self._key(user_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(key, json.dumps([str(item_id), float(value), kind, None if time is None else float(time)]))
        pipe.ltrim(key, 0, self.max_len - 1)
        if self.ttl:
            pipe.expire(key, self.ttl)
        pipe.execute()

    def recent(self, user_id: str, n: int | None = None) -> list[tuple[str, float]]:
        raw = self.client.lrange(self._key(user_id), 0, (n or self.max_len) - 1)
        out = []
        for r in raw:
            entry = json.loads(r)  # [item, value] (older entries) or [item, value, kind, time]
            kind, when = (entry[2], entry[3]) if len(entry) >= 4 else (None, None)
            out.append(Event(str(entry[0]), float(entry[1]), kind, when))
        return out

    def clear(self, user_id: str | None = None) -> None:
        if user_id is not None:
            self.client.delete(self._key(user_id))
            return
        for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(key)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any connection failure means "not healthy"
            return False

    def describe(self) -> str:
        return "redis"


def make_history(redis_url: str | None, max_len: int = 50, prefix: str = "recforge:history:") -> History:
    """Redis-backed history when a URL is given, else in-process."""
    if redis_url:
        return RedisHistory(redis_url, max_len=max_len, prefix=prefix)
    return MemoryHistory(max_len=max_len)
