"""Bounded LRU map for verdicts (docs/ARCHITECTURE.md, "Engine": caches are bounded LRU).

OrderedDict keeps recency order in C; a hit is one dict lookup plus `move_to_end`, a few
hundred nanoseconds from Python, which keeps a cache hit well under the ~1 µs budget.
Not thread-safe beyond what the GIL gives single operations: the relays call the engine
from one event-loop thread. `_data` is never rebound (clear() empties it in place):
Engine.classify keeps a reference to it and inlines the hit path.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("cache size must be >= 0")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    @property
    def data(self) -> OrderedDict:
        """The underlying OrderedDict, for callers that inline the hit path."""
        return self._data

    def get(self, key: K) -> V | None:
        data = self._data
        value = data.get(key)
        if value is not None:
            data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize == 0:
            return
        data = self._data
        if key in data:
            data.move_to_end(key)       # assignment alone keeps an existing key's position
        data[key] = value               # a new key goes to the end (most recent)
        while len(data) > self.maxsize:
            data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
