"""`os.fork` with a thread of the parent waiting in `acquire()`: the child has only the forking
thread, and its copy of the semaphore must not serve the parent's waiter (the crate takes the
parent's queued threads out of the child's queue). `threading.Semaphore` keeps working in such
a child; so must this one."""

import os
import threading
import time
import warnings

import pytest

import futex_semaphore as fs

import _blocked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.mark.parametrize("cls", [fs.Semaphore, fs.BoundedSemaphore])
def test_a_fork_child_is_not_stalled_by_the_parents_waiting_thread(cls):
    sem = cls(1)
    sem.acquire()  # the main thread holds the only permit
    waiting = threading.Event()

    def waiter():
        waiting.set()
        sem.acquire()
        sem.release()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    waiting.wait()
    # It blocks in acquire (asleep on the futex: queued), and waits past the 1 ms after which the
    # oldest waiter gets priority, so that a child that still counted it would starve.
    _blocked.wait_until_blocked(t)
    time.sleep(0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sem.release()  # the permit the parent's main thread held (this thread, copied)
            for _ in range(5):
                if not sem.acquire(timeout=2.0):
                    code = 10
                    break
                sem.release()
            else:
                code = 0 if sem._value == 1 else 11
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child (10: not served, 11: a permit lost)"
    sem.release()
    t.join(10)
    assert not t.is_alive()
    assert sem._value == 1

