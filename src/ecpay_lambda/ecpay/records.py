"""Why the value types of the notification path are ``NamedTuple``s, and a ``repr`` helper for them.

The ECPay notification Lambda's cold start is budgeted (1.15x a bare ``import boto3``), and on
CPython 3.11-3.12 a ``@dataclass(frozen=True)`` costs about 1 ms to *define* (it compiles six
methods from source at import time), against about 0.1 ms for a ``typing.NamedTuple``: with some
thirty records on that path, dataclasses were most of the function's own import time. So the
records it loads are NamedTuples: immutable, typed (mypy checks their fields, constructor and
``_replace``), with the same keyword constructor, defaults and ``repr`` layout as before. Defaults
that used ``default_factory`` are shared immutable values instead (an empty ``MappingProxyType``, a
default ``ExtraPaidInfo()``).

The modules that define many of them evaluate their annotations instead of postponing them (no
``from __future__ import annotations``): typing.NamedTuple compiles every string annotation into a
``ForwardRef`` at class creation, which cost about 2 ms over the ~250 fields on that path.
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
