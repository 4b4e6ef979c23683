"""`Closeable`: once a component is closed, every later call raises `InfraClosedError`.

Threads may still hold a component when ``infra.close()`` runs. Without this, their next call either
silently rebuilt what was closed (a new SDK client, a new pool) or failed with whatever the closed
resource raised (``ValueError: I/O operation on closed file``, ``RuntimeError: ... client has been
closed``). Every interface base class (queue delegate, task queue, stores, registry, Redis, secrets)
mixes this in, so each implementation gets the same rule without repeating it:

- ``close()`` / ``aclose()`` mark the component closed first, then run;
- each public method checks the mark on entry, and an exception a call raises after the component
  was closed under it (another thread closed it mid-call) becomes `InfraClosedError` ``from`` it.

Methods named in ``usable_after_close`` (e.g. ``redacted_url``, used by ``repr``) stay callable.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from .errors import InfraClosedError

__all__ = ["Closeable"]

_CLOSERS = ("close", "aclose")


class Closeable:
    """Mixin: closed components refuse every public call with `InfraClosedError`."""

    usable_after_close: ClassVar[frozenset[str]] = frozenset()
    _component_closed: bool = False

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` or ``aclose()`` was called."""
        return self._component_closed

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, attr in list(vars(cls).items()):
            if name.startswith("_") or not inspect.isfunction(attr) or getattr(attr, "__isabstractmethod__", False):
                continue
            if getattr(attr, "_closeable_wrapped", False):
                continue
            if name in _CLOSERS:
                setattr(cls, name, _marking(attr))
            elif name not in cls.usable_after_close:
                setattr(cls, name, _guarded(name, attr))


def _closed(component: Any, name: str) -> InfraClosedError:
    return InfraClosedError(
        f"{type(component).__name__}.{name}() was called after the component was closed (Infra.close()); "
        "build a new Infra to use it again"
    )


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def guarded_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._component_closed:
                raise _closed(self, name)
            try:
                return await func(self, *args, **kwargs)
            except InfraClosedError:
                raise
            except Exception as err:
                if self._component_closed:
                    raise _closed(self, name) from err
                raise

        wrapper: Callable[..., Any] = guarded_async
    elif inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        def guarded_iterator(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._component_closed:
                raise _closed(self, name)
            return func(self, *args, **kwargs)

        wrapper = guarded_iterator
    else:

        @functools.wraps(func)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._component_closed:
                raise _closed(self, name)
            try:
                return func(self, *args, **kwargs)
            except InfraClosedError:
                raise
            except Exception as err:
                if self._component_closed:
                    raise _closed(self, name) from err
                raise

        wrapper = guarded
    wrapper._closeable_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def _marking(func: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def marking_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._component_closed = True
            return await func(self, *args, **kwargs)

        wrapper: Callable[..., Any] = marking_async
    else:

        @functools.wraps(func)
        def marking(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._component_closed = True
            return func(self, *args, **kwargs)

        wrapper = marking
    wrapper._closeable_wrapped = True  # type: ignore[attr-defined]
    return wrapper
