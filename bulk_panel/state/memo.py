"""One remembered value per owner, for derivations that are costly and asked for often.

>>> memo = Memo()
>>> memo.get((store.frame, threshold), lambda: expensive(store.frame, threshold))

A key's objects (frames, arrays, results) are compared by identity and held while remembered, so
an object that is gone can never be mistaken for a new one at the same address (as ``id()`` keys
can); plain values (numbers, strings, tuples of them) are compared by equality. One entry only:
a new key replaces the old value, so a memo never grows.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

_PLAIN = (type(None), bool, int, float, str, bytes, tuple, frozenset)


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and isinstance(a, _PLAIN) and a == b)


class Memo:
    """A single-entry cache keyed by a tuple of objects (identity) and plain values (equality)."""

    __slots__ = ("_key", "_value")

    def __init__(self) -> None:
        self._key: Optional[tuple] = None
        self._value: Any = None

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The value remembered for ``key``, else ``compute()``, remembered in its place."""
        old = self._key
        if old is None or len(old) != len(key) or not all(map(_same, old, key)):
            self._value = compute()
            self._key = key
        return self._value

    def clear(self) -> None:
        self._key = self._value = None
