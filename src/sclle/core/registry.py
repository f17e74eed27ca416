"""One ``Registry`` class behind every kind of named component (models, weights, baselines, metrics).

Modelled on BasicSR's registry: a registry has a name, refuses duplicates, and names itself and the
known entries in its errors, so ``sclle.metrics.create("nqie")`` says what it could have been.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from sclle.errors import SclleError

T = TypeVar("T")


class RegistryError(SclleError, KeyError):
    """An unknown or duplicate name. A ``KeyError`` too, so ``except KeyError`` keeps working."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class Registry(Generic[T]):
    """A named mapping ``name -> object`` that refuses duplicates and explains unknown names."""

    def __init__(self, name: str, *, error: type[RegistryError] = RegistryError) -> None:
        self.name = name
        self.error = error
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    @overload
    def register(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> T: ...
    @overload
    def register(self, name: str, obj: None = None, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]: ...

    def register(self, name: str, obj: T | None = None, *, aliases: tuple[str, ...] = ()):
        """Register ``obj`` under ``name`` (and ``aliases``); usable as a decorator without ``obj``."""

        def add(o: T) -> T:
            for key in (name, *aliases):
                if key in self._items or key in self._aliases:
                    raise self.error(f"{self.name} registry: {key!r} is already registered")
            self._items[name] = o
            for a in aliases:
                self._aliases[a] = name
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> T:
        """Remove an entry (tests and plugins that replace one on purpose)."""
        obj = self.get(name)
        canonical = self._aliases.get(name, name)
        del self._items[canonical]
        self._aliases = {a: n for a, n in self._aliases.items() if n != canonical}
        return obj

    def get(self, name: str) -> T:
        key = self._aliases.get(name, name)
        try:
            return self._items[key]
        except (KeyError, TypeError):
            raise self.error(self._unknown(name)) from None

    def _unknown(self, name: object) -> str:
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.name} {name!r}{hint}; known: {', '.join(self.names()) or 'none'}"

    def names(self) -> list[str]:
        """Registered names in registration order (aliases not included)."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {len(self)} entries)"
