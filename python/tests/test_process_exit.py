"""ProcessSemaphore when a holder ends: a process that ends normally keeps the permits it holds
taken, as multiprocessing.Semaphore does (a producer/consumer pair must not see phantom items);
only one that dies (killed, crashed, or its own os._exit) has them given back."""

import gc
import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

import futex_semaphore as fs

import _workers

START_METHODS = ["fork", "spawn"]


def run_producer_and_consumer(ctx, make, produced, consumed):
    """A producer and a consumer of a 4-slot buffer, run at once, both ending normally; then what
    `full` and `empty` hold, and whether one more item than those counted can be taken."""
    empty, full = make(4), make(0)
    producer = ctx.Process(target=_workers.produce, args=(empty, full, produced))
    consumer = ctx.Process(target=_workers.consume, args=(empty, full, consumed))
    producer.start()
    consumer.start()
    producer.join(30)
    consumer.join(30)
    assert (producer.exitcode, consumer.exitcode) == (0, 0)
    values = (full.get_value(), empty.get_value())
    # A further consumer takes the items left, and no more.
    for _ in range(values[0]):
        assert full.acquire(timeout=5)
    phantom = full.acquire(timeout=0.2)
    return values, phantom


def assert_kept_taken(sem):
    """The permit an ended holder took is still taken: no recovery gives it back."""
    assert sem.recover() == 0
    assert not sem.acquire(timeout=0.3)  # past RECOVERY_INTERVAL: a waiter's scan finds none
    assert sem.get_value() == 0


def run_child(method, target, sem, exitcode):
    """Runs `target(sem)` in a `multiprocessing` child and checks how it ended."""
    p = mp.get_context(method).Process(target=target, args=(sem,))
    p.start()
    p.join(30)
    assert p.exitcode == exitcode


def run_program(sem, end, code):
    """Runs a main program (not a multiprocessing child) that takes a permit and ends by `end`."""
    script = textwrap.dedent(HOLDER).format(end=end)
    args = [sys.executable, "-c", script, pickle.dumps(sem).hex()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == code, out.stderr


@pytest.mark.parametrize("method", START_METHODS)
def test_producer_and_consumer_that_end_normally_leave_the_counts_of_multiprocessing(method):
    # The consumer acquires `full` and never releases it (the producer does), the producer
    # acquires `empty` (the consumer releases it): their "held" permits must not come back.
    ctx = mp.get_context(method)
    std = run_producer_and_consumer(ctx, ctx.Semaphore, 3, 2)
    assert std == ((1, 3), False)
    ours = run_producer_and_consumer(ctx, fs.ProcessSemaphore, 3, 2)
    assert ours == std, "full/empty values, or a phantom item for a further consumer"


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_of_a_child_that_returns_without_release_stays_taken(method):
    # The parent holds one too (so this process's exit hook is registered before the child
    # starts: a fork child registers its own).
    sem = fs.ProcessSemaphore(2)
    assert sem.acquire(False)
    run_child(method, _workers.acquire_and_exit, sem, 0)
    assert_kept_taken(sem)
    sem.release()  # the parent's own
    assert sem.get_value() == 1


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_of_a_child_whose_target_raises_stays_taken(method):
    sem = fs.ProcessSemaphore(1)
    run_child(method, _workers.acquire_and_raise, sem, 1)
    assert_kept_taken(sem)


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_taken_by_a_thread_after_the_child_s_target_returned_stays_taken(method):
    sem = fs.ProcessSemaphore(1)
    run_child(method, _workers.acquire_in_a_thread_after_the_target_returns, sem, 0)
    assert_kept_taken(sem)


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_of_a_child_that_calls_os_exit_itself_comes_back(method):
    # os._exit outside multiprocessing's bootstrap skips its finalizers: an abnormal end.
    sem = fs.ProcessSemaphore(1)
    run_child(method, _workers.acquire_and_os_exit, sem, 0)
    assert sem.acquire(timeout=5)
    assert sem.get_value() == 0


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_of_a_killed_child_still_comes_back(method):
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(2)
    assert sem.acquire(False)  # the parent's: stays taken
    ready = ctx.Event()
    p = ctx.Process(target=_workers.acquire_and_hang, args=(sem, ready))
    p.start()
    assert ready.wait(30)
    assert sem.get_value() == 0
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert sem.recover() == 1
    assert sem.get_value() == 1


def test_permit_held_when_the_last_handle_is_dropped_stays_taken():
    sem = fs.ProcessSemaphore(1)
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The observer: its own mapping of the region, holding nothing.
        code = 1
        try:
            os.close(go_w)
            os.read(go_r, 1)
            seen = (sem.get_value(), sem.recover(), sem.acquire(timeout=0.3))
            os.write(out_w, repr(seen).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(out_w)
    assert sem.acquire(False)
    del sem
    gc.collect()
    os.write(go_w, b"x")
    seen = os.read(out_r, 100).decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen == repr((0, 0, False))


HOLDER = """
import os, pickle, signal, sys
sem = pickle.loads(bytes.fromhex(sys.argv[1]))
assert sem.acquire(timeout=5)
{end}
"""


@pytest.mark.parametrize(
    "end, code",
    [("", 0), ("sys.exit(3)", 3), ("raise RuntimeError('expected by the test')", 1)],
    ids=["end-of-script", "sys-exit", "uncaught-exception"],
)
def test_permit_of_a_program_that_ends_normally_stays_taken(end, code):
    # A main program (not a multiprocessing child): atexit, and the handle's drop at shutdown.
    sem = fs.ProcessSemaphore(1)
    run_program(sem, end, code)
    assert_kept_taken(sem)


@pytest.mark.parametrize(
    "end, code",
    [("os._exit(0)", 0), ("os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL)],
    ids=["os-exit", "sigkill"],
)
def test_permit_of_a_program_that_dies_comes_back(end, code):
    sem = fs.ProcessSemaphore(1)
    run_program(sem, end, code)
    assert sem.acquire(timeout=5)
    assert sem.get_value() == 0
