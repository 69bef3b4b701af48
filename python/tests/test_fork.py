"""`os.fork` with a thread of the parent waiting in `acquire()`: the child has only the forking
thread, and its copy of the semaphore must not serve the parent's waiter (the crate takes the
parent's queued threads out of the child's queue). `threading.Semaphore` keeps working in such
a child; so must this one. And the package's own helper thread must not make a hang in a child
likelier than Python's threads do."""

import asyncio
import os
import threading
import time
import warnings

import pytest

import futex_semaphore as fs

import _blocked
import _hooks

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



def test_the_wake_helper_keeps_one_python_thread_state():
    """Wakes that threads queue without the GIL (a blocking acquire that timed out and passed its
    wake on to a task) are delivered by the package's helper thread. It must do so with one
    Python thread state for its life: one made and freed per delivery takes the interpreter's
    lock of thread states each time, and where CPython's gh-112275 is not fixed (3.11.7, and others
    before 3.12 and its backports) a `fork` while another thread holds that lock hangs the child in
    `PyOS_AfterFork_Child` (one child in 12,000 forks of a process
    doing this, before the fix). A `threading.local` lives in the thread state, so a mark set in
    one delivery is seen in the next only if the state was kept."""
    sem = fs.Semaphore(1)
    stop = threading.Event()
    local = threading.local()
    seen = []  # per delivery by the helper: whether the mark of an earlier one was still there
    ours = {threading.get_ident()}  # the Python threads of this test; the helper is not one

    class Loop(asyncio.SelectorEventLoop):
        def call_soon_threadsafe(self, *args, **kwargs):
            if threading.get_ident() not in ours:
                seen.append(getattr(local, "mark", False))
                local.mark = True
                if len(seen) >= 5:
                    stop.set()
            return super().call_soon_threadsafe(*args, **kwargs)

    go = threading.Event()  # once every thread of the test is in `ours`

    async def task():
        go.wait()
        while not stop.is_set():
            async with sem:
                await asyncio.sleep(0)

    async def tasks():
        await asyncio.gather(*(task() for _ in range(8)))

    def run_loop():
        loop = Loop()
        try:
            loop.run_until_complete(tasks())
        finally:
            loop.close()

    def blocker():
        go.wait()
        while not stop.is_set():
            if sem.acquire(timeout=0.0005):
                sem.release()

    threads = [threading.Thread(target=run_loop)] + [threading.Thread(target=blocker) for _ in range(2)]
    for t in threads:
        t.start()
        ours.add(t.ident)
    go.set()
    stop.wait(20)
    stop.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert len(seen) >= 2, f"only {len(seen)} wakes went through the helper thread in 20 s"
    assert all(seen[1:]), f"a delivery found no mark of the one before it: {seen}"


# Run by `_hooks.run`: a fresh interpreter, the only place the module has its test hooks.
HELD_AT_A_FORK = r"""
import os, signal, time

hooks._hold_wake_locks()  # a thread without the GIL holds the wake queue's locks until a fork begins
pid = os.fork()
if pid == 0:
    signal.alarm(10)  # a child that hangs dies
    os._exit(0 if hooks._wake_locks_free() else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), hooks._wake_locks_free())
"""


def test_a_fork_waits_for_a_thread_in_the_wake_queues_locks_and_the_child_finds_them_free():
    """The package's wake queue is taken without the GIL (by a blocking acquire that passes a wake
    on, the crate's timer thread, the helper thread), so `os.fork` can come while another thread
    holds one of its locks: a child with that copy would hang in its first async wake. The
    forking thread takes those locks across the fork (`forks.rs`). A test hook, attached only
    where `_FUTEX_SEMAPHORE_TEST_HOOKS` is set, makes a thread hold them until a fork begins;
    without the guard the child finds them held (exit code 3)."""
    out = _hooks.run(HELD_AT_A_FORK)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"], "the child's exit code (3: a lock held), the parent's locks free"


def test_the_test_hooks_are_not_there_by_default():
    for module in {fs, getattr(fs, "futex_semaphore", fs)}:
        assert not any(hasattr(module, hook) for hook in ["_hold_wake_locks", "_wake_locks_free", "_release_elsewhere"])

