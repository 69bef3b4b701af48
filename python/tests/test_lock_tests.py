"""CPython's own semaphore tests (Lib/test/lock_tests.py), run unchanged on this package's
classes, as CPython's test_threading runs them on threading's."""

import pytest

lock_tests = pytest.importorskip("test.lock_tests", reason="the interpreter's test package is not installed")

import futex_semaphore


class SemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(futex_semaphore.Semaphore)


class BoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(futex_semaphore.BoundedSemaphore)
