"""The hot methods are the package's own C methods (python/src/fastcall.rs), installed over
PyO3's: they must take and refuse arguments as before, work on subclass instances, refuse other
objects as `self`, and keep their docstrings and signatures."""

import asyncio
import inspect

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


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.ProcessSemaphore])
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


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.AsyncSemaphore])
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
