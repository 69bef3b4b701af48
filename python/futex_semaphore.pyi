"""Type stubs of `futex_semaphore`: threading, asyncio and multiprocessing semaphores on the
futex-semaphore engine (docs/python.md).

maturin ships this file as the package's `__init__.pyi`, with a `py.typed` marker, so type
checkers and IDEs see the signatures of the compiled module. `python/tests/test_stubs.py` checks
it against the module: the same classes, methods, parameters and defaults.
"""

from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar, final

_T_co = TypeVar("_T_co", covariant=True)

__version__: str
__all__ = [
    "__version__",
    "Semaphore",
    "BoundedSemaphore",
    "AsyncSemaphore",
    "AsyncBoundedSemaphore",
    "ProcessSemaphore",
    "Ready",
    "Acquiring",
]

class Semaphore:
    """A counting semaphore: `threading.Semaphore`'s API, also usable from asyncio."""

    def __init__(self, value: int = 1) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Takes a permit; waits if `blocking`, at most `timeout` seconds if given."""
    def release(self, n: int = 1) -> None:
        """Gives `n` permits back, waking waiting threads and tasks."""
    def acquire_async(self) -> Acquiring[bool]:
        """Takes a permit from asyncio: `await sem.acquire_async()` returns `True`."""
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None: ...
    def __aenter__(self) -> Acquiring[None]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> Ready: ...
    @property
    def _value(self) -> int:
        """The number of free permits (CPython's private `_value`)."""

class BoundedSemaphore(Semaphore):
    """A `Semaphore` whose `release` raises `ValueError` past the initial value:
    `threading.BoundedSemaphore`'s API."""

    @property
    def _initial_value(self) -> int:
        """The initial value, which is also the bound."""

class AsyncSemaphore:
    """`asyncio.Semaphore`'s API, thread-safe: `release()` from any thread, tasks of several
    event loops waiting at once."""

    def __init__(self, value: int = 1) -> None: ...
    def acquire(self) -> Acquiring[bool]:
        """Takes a permit, waiting while there is none: `await sem.acquire()` returns `True`."""
    def release(self) -> None:
        """Gives a permit back, waking a waiting task (of any loop, from any thread)."""
    def locked(self) -> bool:
        """Whether an acquire would have to wait now."""
    def __aenter__(self) -> Acquiring[None]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> Ready: ...
    @property
    def _value(self) -> int:
        """The number of free permits (CPython's private `_value`)."""

class AsyncBoundedSemaphore(AsyncSemaphore):
    """An `AsyncSemaphore` whose `release` raises `ValueError` past the initial value:
    `asyncio.BoundedSemaphore`'s API."""

class ProcessSemaphore:
    """A semaphore shared between processes: `multiprocessing.Semaphore`'s API; the permits of
    a process killed while holding them come back (unless `recover=False`)."""

    def __init__(self, value: int = 1, *, recover: bool = True) -> None: ...
    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Takes a permit; waits if `block`, at most `timeout` seconds if given."""
    def release(self) -> None:
        """Gives a permit back: one this process holds if it holds any, else a new one."""
    def get_value(self) -> int:
        """The number of free permits."""
    def recover(self) -> int:
        """Gives back now the permits of processes that died holding them; returns how many."""
    @property
    def name(self) -> str:
        """The name of the region in `/dev/shm`."""
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    @classmethod
    def _open(
        cls, name: str, recover: bool, subclass: type[ProcessSemaphore] | None = None
    ) -> ProcessSemaphore:
        """Internal: what a pickled `ProcessSemaphore` is unpickled with."""

@final
class Acquiring(Coroutine[Any, Any, _T_co], Generic[_T_co]):
    """The awaitable of an async acquire: a coroutine that takes the permit when first run and
    finishes with `True` (`None` for `__aenter__`); closed, thrown into or freed before that, it
    takes nothing. Generic only here, for type checkers."""

    def __await__(self) -> Generator[Any, None, _T_co]: ...
    def send(self, value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any: ...
    def close(self) -> None: ...
    @property
    def __name__(self) -> str:
        """`acquire` or `__aenter__`, for a task's `repr`."""
    @property
    def __qualname__(self) -> str: ...

@final
class Ready(Coroutine[Any, Any, None]):
    """An awaitable that is done already: what `__aexit__` returns (the release is done by
    then)."""

    def __await__(self) -> Generator[Any, None, None]: ...
    def send(self, _value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any: ...
    def close(self) -> None: ...
