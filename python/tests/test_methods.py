"""The hot methods are the package's own C methods (python/src/fastcall.rs), installed over
PyO3's: they must take and refuse arguments as before, work on subclass instances, refuse other
objects as `self`, and keep their docstrings and signatures."""

import asyncio
import inspect
import subprocess
import sys
import threading

import pytest

import futex_semaphore as fs

# (class, method, whether it takes arguments) for every method fastcall.rs installs.
INSTALLED = [
    (fs.Semaphore, "acquire", True),
    (fs.Semaphore, "release", True),
    (fs.Semaphore, "__enter__", False),
    (fs.Semaphore, "__exit__", True),
    (fs.Semaphore, "acquire_async", False),
    (fs.Semaphore, "__aenter__", False),
    (fs.Semaphore, "__aexit__", True),
    (fs.AsyncSemaphore, "acquire", False),
    (fs.AsyncSemaphore, "release", False),
    (fs.AsyncSemaphore, "locked", False),
    (fs.AsyncSemaphore, "__aenter__", False),
    (fs.AsyncSemaphore, "__aexit__", True),
    (fs.ProcessSemaphore, "acquire", True),
    (fs.ProcessSemaphore, "release", False),
    (fs.ProcessSemaphore, "get_value", False),
    (fs.ProcessSemaphore, "__enter__", False),
    (fs.ProcessSemaphore, "__exit__", True),
]

NO_ARGS = [(cls, name) for cls, name, takes in INSTALLED if not takes]


def value(sem):
    return sem.get_value() if isinstance(sem, fs.ProcessSemaphore) else sem._value


@pytest.mark.parametrize("cls, name", NO_ARGS, ids=lambda x: getattr(x, "__name__", x))
def test_no_argument_methods_refuse_arguments_and_change_nothing(cls, name):
    sem = cls(1)
    method = getattr(sem, name)
    with pytest.raises(TypeError, match="takes no arguments"):
        method(1)
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        method(x=1)
    assert value(sem) == 1


@pytest.mark.parametrize("cls, arg", [(fs.Semaphore, "blocking"), (fs.ProcessSemaphore, "block")])
def test_acquire_refuses_wrong_arguments(cls, arg):
    sem = cls(1)
    with pytest.raises(TypeError, match="at most 2 arguments"):
        sem.acquire(True, None, None)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        sem.acquire(wait=True)
    with pytest.raises(TypeError, match="multiple values"):
        sem.acquire(True, **{arg: True})
    with pytest.raises(TypeError):
        sem.acquire(timeout="soon")
    assert value(sem) == 1
    assert sem.acquire(**{arg: False}) is True
    assert sem.acquire(timeout=0) is False
    sem.release()


def test_non_blocking_acquire_with_a_timeout_is_as_in_the_standard_library():
    sem = fs.Semaphore(1)  # threading: a ValueError
    with pytest.raises(ValueError, match="can't specify timeout"):
        sem.acquire(False, timeout=1)
    assert sem._value == 1
    sem = fs.ProcessSemaphore(1)  # multiprocessing: the timeout is ignored
    assert sem.acquire(False, timeout=1) is True
    assert sem.get_value() == 0


def test_methods_without_a_result_return_none():
    for sem in (fs.Semaphore(1), fs.ProcessSemaphore(1)):
        assert sem.acquire() is True and sem.release() is None
        assert sem.__enter__() is True and sem.__exit__(None, None, None) is None
    sem = fs.AsyncSemaphore(1)
    assert sem.release() is None and sem.locked() is False


def test_semaphore_release_takes_n_by_position_or_keyword_only():
    sem = fs.Semaphore(0)
    assert sem.release(2) is None
    sem.release(n=1)
    assert sem._value == 3
    with pytest.raises(TypeError, match="at most 1 argument"):
        sem.release(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        sem.release(count=1)
    with pytest.raises(TypeError):
        sem.release("1")
    assert sem._value == 3


class PlainSubclass(fs.Semaphore):
    pass


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.ProcessSemaphore, PlainSubclass])
def test_exit_takes_three_arguments_and_refuses_more(cls):
    sem = cls(1)
    sem.acquire()
    with pytest.raises(TypeError, match="at most 3 arguments"):
        sem.__exit__(None, None, None, None)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        sem.__exit__(None, None, traceback=None)
    assert value(sem) == 0
    sem.__exit__(exc_type=None, exc=None, tb=None)
    assert value(sem) == 1


class PlainAsyncSubclass(fs.AsyncSemaphore):
    pass


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.AsyncSemaphore, PlainSubclass, PlainAsyncSubclass])
def test_aexit_refuses_more_than_three_arguments(cls):
    sem = cls(0)
    with pytest.raises(TypeError, match="at most 3 arguments"):
        sem.__aexit__(None, None, None, None)
    assert sem._value == 0


@pytest.mark.parametrize("cls, name", [(cls, name) for cls, name, _ in INSTALLED])
def test_methods_refuse_another_type_as_self(cls, name):
    descriptor = cls.__dict__[name]
    other = fs.AsyncSemaphore(1) if cls is not fs.AsyncSemaphore else fs.Semaphore(1)
    for stranger in (object(), other):
        with pytest.raises(TypeError, match="doesn't apply"):
            descriptor(stranger)
        with pytest.raises(TypeError, match="doesn't apply"):
            descriptor.__get__(stranger)


class PySemaphore(fs.Semaphore):
    """A Python subclass with state of its own."""

    def __init__(self, value=1):
        self.calls = 0


class CountingSemaphore(fs.Semaphore):
    """A Python subclass that overrides a fast method."""

    def acquire(self, blocking=True, timeout=None):
        self.calls = getattr(self, "calls", 0) + 1
        return super().acquire(blocking, timeout)


@pytest.mark.parametrize("cls", [fs.BoundedSemaphore, PySemaphore])
def test_subclass_instances_use_the_fast_methods(cls):
    sem = cls(2)
    assert sem.acquire() and sem.acquire(timeout=0.01)
    assert not sem.acquire(False)
    sem.release()
    with sem:
        assert sem._value == 0
    sem.release()
    assert sem._value == 2
    if cls is PySemaphore:
        assert sem.calls == 0  # its own attributes, next to the Rust state
    else:
        with pytest.raises(ValueError):
            sem.release()


def test_an_override_in_a_subclass_is_called():
    sem = CountingSemaphore(1)
    with sem:  # __enter__ is the fast one: it does not go through acquire
        pass
    assert sem.acquire() and getattr(sem, "calls") == 1
    sem.release()


class PyAsyncSemaphore(fs.AsyncSemaphore):
    pass


@pytest.mark.parametrize("cls", [fs.AsyncBoundedSemaphore, PyAsyncSemaphore])
def test_async_subclass_instances_use_the_fast_methods(cls):
    async def main():
        sem = cls(1)
        assert not sem.locked()
        async with sem:
            assert sem.locked()
        assert await sem.acquire() is True
        sem.release()
        return sem._value

    assert asyncio.run(main()) == 1


def test_semaphore_from_asyncio_with_the_fast_methods():
    async def main():
        sem = PySemaphore(1)
        async with sem:
            assert sem._value == 0
        assert await sem.acquire_async() is True
        sem.release()
        return sem._value

    assert asyncio.run(main()) == 1


@pytest.mark.parametrize("cls, name", [(cls, name) for cls, name, _ in INSTALLED])
def test_methods_are_installed_and_keep_their_signatures(cls, name):
    method = cls.__dict__[name]
    assert type(method).__name__ == "method_descriptor"
    assert method.__name__ == name and method.__qualname__ == f"{cls.__name__}.{name}"
    params = list(inspect.signature(method).parameters)
    assert params[0] == "self"


@pytest.mark.parametrize(
    "method, doc, signature",
    [
        (fs.Semaphore.acquire, "Takes a permit.", "(self, /, blocking=True, timeout=None)"),
        (fs.Semaphore.release, "Gives `n` permits back", "(self, /, n=1)"),
        (fs.Semaphore.acquire_async, "Takes a permit from asyncio", "(self, /)"),
        (fs.AsyncSemaphore.acquire, "Takes a permit, waiting", "(self, /)"),
        (fs.AsyncSemaphore.release, "Gives a permit back", "(self, /)"),
        (fs.AsyncSemaphore.locked, "Whether an acquire would have to wait", "(self, /)"),
        (fs.ProcessSemaphore.acquire, "Takes a permit.", "(self, /, block=True, timeout=None)"),
        (fs.ProcessSemaphore.release, "Gives a permit back", "(self, /)"),
        (fs.ProcessSemaphore.get_value, "The number of free permits.", "(self, /)"),
        (fs.Semaphore.__enter__, "`with sem:` takes a permit", "(self, /)"),
        (fs.Semaphore.__exit__, "The end of `with sem:`", "(self, /, exc_type=None, exc=None, tb=None)"),
        (fs.Semaphore.__aexit__, "The end of `async with sem:`", "(self, /, exc_type=None, exc=None, tb=None)"),
        (fs.AsyncSemaphore.__aexit__, "The end of `async with sem:`", "(self, /, exc_type=None, exc=None, tb=None)"),
        (fs.ProcessSemaphore.__exit__, "The end of `with sem:`", "(self, /, exc_type=None, exc=None, tb=None)"),
    ],
)
def test_methods_keep_their_docstrings_and_signatures(method, doc, signature):
    assert method.__doc__.startswith(doc)
    assert str(inspect.signature(method)) == signature


def logging_subclass(base):
    """A subclass that logs the calls of its `acquire`, `acquire_async` and `release`."""

    class Logging(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.log = []

        def acquire(self, *args, **kwargs):
            self.log.append("acquire")
            return super().acquire(*args, **kwargs)

        def release(self, *args, **kwargs):
            self.log.append("release")
            return super().release(*args, **kwargs)

        if hasattr(base, "acquire_async"):

            def acquire_async(self):
                self.log.append("acquire_async")
                return super().acquire_async()

    return Logging


@pytest.mark.parametrize(
    "ours, theirs",
    [(fs.Semaphore, threading.Semaphore), (fs.BoundedSemaphore, threading.BoundedSemaphore)],
)
def test_with_calls_a_subclass_s_overrides_as_threading_does(ours, theirs):
    # threading's `__exit__` calls `self.release()`; its `__enter__` is the base class's
    # `acquire` itself, which calls nothing.
    logs = []
    for base in (ours, theirs):
        sem = logging_subclass(base)(1)
        with sem:
            pass
        logs.append(sem.log)
    assert logs[0] == logs[1] == ["release"]
    assert sem._value == 1


@pytest.mark.parametrize(
    "ours, theirs",
    [(fs.AsyncSemaphore, asyncio.Semaphore), (fs.AsyncBoundedSemaphore, asyncio.BoundedSemaphore)],
)
def test_async_with_calls_a_subclass_s_overrides_as_asyncio_does(ours, theirs):
    async def main(base):
        sem = logging_subclass(base)(1)
        async with sem as entered:
            assert entered is None and sem.locked()
        assert not sem.locked()
        return sem.log

    logs = [asyncio.run(asyncio.wait_for(main(base), 10)) for base in (ours, theirs)]
    assert logs[0] == logs[1] == ["acquire", "release"]


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.BoundedSemaphore])
def test_async_with_calls_a_threading_subclass_s_acquire_async_and_release(cls):
    async def main():
        sem = logging_subclass(cls)(1)
        async with sem as entered:
            assert entered is None and sem._value == 0
        return sem.log, sem._value

    assert asyncio.run(asyncio.wait_for(main(), 10)) == (["acquire_async", "release"], 1)


@pytest.mark.parametrize(
    "make, fail, error",
    [
        (lambda: fs.BoundedSemaphore(1), lambda s: s.release(), ValueError),
        (lambda: fs.Semaphore(1), lambda s: s.release(0), ValueError),
        (lambda: fs.Semaphore(1), lambda s: s.acquire(False, 1), ValueError),
        (lambda: fs.Semaphore(1), lambda s: s.acquire(bogus=1), TypeError),
        (lambda: fs.AsyncBoundedSemaphore(1), lambda s: s.release(), ValueError),
        (lambda: fs.Semaphore(1), lambda s: s.__exit__(1, 2, 3, 4), TypeError),
    ],
)
def test_failing_fast_methods_free_their_errors_at_once(make, fail, error):
    # The error's objects (its type, its message) were left to PyO3's pool of deferred decrefs,
    # which only a method PyO3 made empties: none is called in the loop.
    sem = make()
    before = sys.getrefcount(error)
    for _ in range(1000):
        try:
            fail(sem)
        except error:
            pass
    grown = sys.getrefcount(error) - before
    assert grown < 100  # 1000 before the fix


@pytest.mark.parametrize("cls, name", [(fs.Semaphore, "acquire_async"), (fs.AsyncSemaphore, "acquire")])
def test_the_spare_awaitable_is_let_go_at_once_when_replaced(cls, name):
    sem = cls(1)
    first = getattr(sem, name)()  # the semaphore's spare, and `first`
    second = getattr(sem, name)()  # `first` is someone's: a new spare, and `first` let go
    refs = sys.getrefcount(first) - 1
    first.close()
    second.close()
    assert refs == 1


SHUTDOWN_SCRIPTS = {
    # A fast method that raises, and a subclass's `with` (dispatched through `self`), in a
    # `__del__` run while the interpreter shuts down: both aborted the process (PyO3's first
    # `with_gil` asserts an interpreter that no longer says it is initialized).
    "error": """
import futex_semaphore as fs
class Holder:
    def __del__(self):
        try:
            self.sem.release()
        except ValueError:
            print("caught")
h = Holder()
h.sem = fs.BoundedSemaphore(1)
""",
    "subclass": """
import futex_semaphore as fs
class Sub(fs.Semaphore):
    pass
class Holder:
    def __del__(self):
        with self.sem:
            pass
        print("released")
h = Holder()
h.sem = Sub(1)
""",
}


@pytest.mark.parametrize("name", SHUTDOWN_SCRIPTS)
def test_the_slow_paths_of_fast_methods_work_while_the_interpreter_shuts_down(name):
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPTS[name]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("caught", "released")
