"""A ``repr`` helper for the ``NamedTuple`` records of the notification path.

Why they are NamedTuples (and their modules evaluate annotations): the cold-start rule,
docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Protocol


class _Record(Protocol):
    @property
    def _fields(self) -> tuple[str, ...]: ...

    def __iter__(self) -> Iterator[object]: ...


def repr_without(record: _Record, hidden: Container[str]) -> str:
    """``Name(field=value, ...)`` like the NamedTuple's own repr, leaving out the ``hidden`` fields.

    What ``field(repr=False)`` did for the dataclasses: raw field sets stay out of logs and reprs.
    """
    shown = ", ".join(
        f"{name}={value!r}" for name, value in zip(record._fields, record, strict=True) if name not in hidden
    )
    return f"{type(record).__name__}({shown})"
