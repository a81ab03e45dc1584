"""One small registry type, used for tasks and for models.

Duplicate names raise; unknown names raise with the closest registered names. Each entry records its origin:
"built-in", or where an outside plugin came from (`harness.plugin_sources`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists near matches and all names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    description: str
    obj: T
    origin: str = "built-in"

    @property
    def outside(self) -> bool:
        """Registered by a plugin from outside the repository."""
        return self.origin != "built-in"


class Registry(Generic[T]):
    """Named objects of one kind ("task", "model")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, description: str, origin: str = "built-in") -> T:
        if name in self._entries:
            taken = self._entries[name].origin
            raise ValueError(f"{self.kind} {name!r} is already registered ({taken}); pick another name")
        self._entries[name] = Entry(name, description, obj, origin)
        return obj

    def remove_origin(self, origin: str) -> None:
        """Forget every entry of `origin` (a plugin that failed half-way through its registrations)."""
        self._entries = {n: e for n, e in self._entries.items() if e.origin != origin}

    def decorator(self, name: str, description: str) -> Callable[[T], T]:
        """`@registry.decorator("name", "what it is")` on a factory."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, description)

        return wrap

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())
