"""Plain value classes for the modules every command imports, without :mod:`dataclasses`.

``dataclasses`` imports :mod:`inspect` (and with it ``ast`` and ``dis``): several
milliseconds of every process, a warm ``graphkit query`` included, for a handful of
classes. A :class:`Record` subclass writes its ``__init__`` and lists its fields; the
``repr`` (leaving out the hidden ones: keys, passphrases, tokens) and equality come
from that list, as a dataclass's would.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

__all__ = ["Record"]


class Record:
    """Base of a plain value class: ``_fields`` in order, ``_hidden`` left out of repr."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._hidden
        )
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__: ClassVar[Any] = None  # mutable, as a dataclass with eq: unhashable

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (as :func:`dataclasses.replace`; fields are the
        ``__init__`` parameters)."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {name: getattr(self, name) for name in self._fields}
        return type(self)(**{**values, **changes})
