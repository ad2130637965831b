"""One remembered value per owner, for derivations that are costly and asked for often.

>>> memo = Memo()
>>> memo.get((store.frame, threshold), lambda: expensive(store.frame, threshold))
>>> shared_memo(results, "file names").get((), lambda: base_names(results.frame["path"]))

A key's objects (frames, arrays, results) are compared by identity and held while remembered, so
an object that is gone can never be mistaken for a new one at the same address (as ``id()`` keys
can); plain values (numbers, strings, tuples of them) are compared by equality. One entry only:
a new key replaces the old value, so a memo never grows.

:func:`shared_memo` is the process's memo for what an object that never changes (a loaded
:class:`~bulk_panel.compute.results.Results`, a frame) gives: every session holding the object
reads the same value (file names, label codes, the nearest-point tree at a million rows are
made once, not once per browser session), and it goes when the object does.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Optional

__all__ = ["Memo", "shared_memo"]

_PLAIN = (type(None), bool, int, float, str, bytes, tuple, frozenset)


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and isinstance(a, _PLAIN) and a == b)


class Memo:
    """A single-entry cache keyed by a tuple of objects (identity) and plain values (equality).

    The key and its value are swapped in together: threads asking at once may both compute,
    but none ever gets another key's value."""

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry: Optional[tuple[tuple, Any]] = None

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The value remembered for ``key``, else ``compute()``, remembered in its place."""
        entry = self._entry
        if entry is None or len(entry[0]) != len(key) or not all(map(_same, entry[0], key)):
            entry = (key, compute())
            self._entry = entry
        return entry[1]

    def clear(self) -> None:
        self._entry = None


# re-entrant: the garbage collector may run an owner's callback (_forget) in a thread that holds it
_lock = threading.RLock()
#: id(owner) → (a weak reference to the owner, its memos by name)
_owned: dict[int, tuple[weakref.ref, dict[str, Memo]]] = {}


def _forget(key: int, ref: weakref.ref) -> None:
    with _lock:
        entry = _owned.get(key)
        if entry is None or entry[0] is not ref:
            return
        del _owned[key]
    # the memos are let go here, outside the lock: their values may own other owners
    del entry


def shared_memo(owner: Any, name: str) -> Memo:
    """The process's memo called ``name`` for ``owner`` (made on first use), kept while
    ``owner`` lives. ``owner`` must never change in place, and the keys given to the memo must
    not hold ``owner`` itself (that would keep it alive).

    >>> shared_memo(frame, "label codes").get((), lambda: pd.factorize(frame["label"]))
    """
    key = id(owner)
    with _lock:
        entry = _owned.get(key)
        if entry is None or entry[0]() is not owner:
            entry = (weakref.ref(owner, lambda ref: _forget(key, ref)), {})
            _owned[key] = entry
        memos = entry[1]
        if name not in memos:
            memos[name] = Memo()
        return memos[name]
