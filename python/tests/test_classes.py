"""The classes as Python classes: weak references, subclasses with their own `__init__`, and
the constructors' arguments (python/src/args.rs), against the standard library's classes."""

import gc
import weakref

import pytest

import futex_semaphore as fs

CLASSES = [fs.Semaphore, fs.BoundedSemaphore, fs.AsyncSemaphore, fs.AsyncBoundedSemaphore, fs.ProcessSemaphore]
IN_PROCESS = CLASSES[:4]


def value(sem):
    return sem.get_value() if isinstance(sem, fs.ProcessSemaphore) else sem._value


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_takes_weak_references(cls):
    sem = cls(1)
    ref = weakref.ref(sem)
    cache = weakref.WeakValueDictionary({"k": sem})
    assert ref() is sem and cache["k"] is sem
    del sem
    gc.collect()
    assert ref() is None and "k" not in cache


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_subclass_with_its_own_init_passes_the_value_on(cls):
    class Tagged(cls):
        def __init__(self, value=1, tag=None):
            super().__init__(value)
            self.tag = tag

    assert (value(Tagged(3, "x")), Tagged(3, "x").tag) == (3, "x")
    assert (value(Tagged(value=2, tag="y")), Tagged(value=2).tag) == (2, None)
    assert value(Tagged()) == 1
    assert isinstance(Tagged(), cls)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_plain_subclass_takes_the_classs_arguments(cls):
    class Plain(cls):
        pass

    assert value(Plain(2)) == 2
    assert value(Plain(value=2)) == 2
    with pytest.raises(TypeError):
        Plain(2, 3)  # its __init__ is the class's


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_subclass_init_with_another_value_is_refused(cls):
    # The value is set when the object is made: a different one in __init__ would be ignored.
    class Five(cls):
        def __init__(self):
            super().__init__(5)

    with pytest.raises(ValueError, match="made with value=1"):
        Five()


def test_bounded_subclasses_keep_the_bound():
    for cls in (fs.BoundedSemaphore, fs.AsyncBoundedSemaphore):

        class Sub(cls):
            pass

        sem = Sub(1)
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_class_itself_takes_exactly_its_arguments(cls):
    with pytest.raises(TypeError, match="takes at most 1 positional argument"):
        cls(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'loop'"):
        cls(1, loop=None)
    with pytest.raises(TypeError, match="multiple values for argument 'value'"):
        cls(1, value=1)
    assert value(cls(value=2)) == 2


@pytest.mark.parametrize("cls", IN_PROCESS, ids=lambda c: c.__name__)
def test_a_whole_float_value_is_taken_as_by_threading_and_asyncio(cls):
    assert cls(2.0)._value == 2
    with pytest.raises(TypeError, match="whole number"):
        cls(2.5)  # CPython takes it, and counts in fractions of a permit


def test_process_semaphore_takes_values_as_multiprocessing():
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        fs.ProcessSemaphore(2.0)
    with pytest.raises(OverflowError):
        fs.ProcessSemaphore(2**31)
    with pytest.raises(ValueError):
        fs.ProcessSemaphore(-1)
    assert fs.ProcessSemaphore(2, recover=False).get_value() == 2


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.ProcessSemaphore], ids=lambda c: c.__name__)
def test_an_unknown_keyword_is_quoted_as_cpython_does(cls):
    with pytest.raises(TypeError, match=r"acquire\(\) got an unexpected keyword argument 'foo'$"):
        cls(1).acquire(foo=1)
