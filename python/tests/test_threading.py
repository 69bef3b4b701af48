"""Semaphore / BoundedSemaphore beyond CPython's lock_tests: the GIL, Ctrl-C, and details of
threading's API."""

import inspect
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import futex_semaphore as fs

import _blocked


def test_bounded_is_a_semaphore():
    assert issubclass(fs.BoundedSemaphore, fs.Semaphore)
    assert isinstance(fs.BoundedSemaphore(2), fs.Semaphore)
    assert fs.BoundedSemaphore(3)._initial_value == 3


def test_release_needs_n_of_one_or_more():
    sem = fs.Semaphore(0)
    with pytest.raises(ValueError, match="n must be one or more"):
        sem.release(0)
    sem.release(3)
    assert sem._value == 3


def test_bounded_release_of_many_is_all_or_nothing():
    sem = fs.BoundedSemaphore(3)
    assert sem.acquire() and sem.acquire()
    with pytest.raises(ValueError, match="released too many times"):
        sem.release(3)
    assert sem._value == 1
    sem.release(2)
    assert sem._value == 3


def test_blocking_takes_any_truth_value():
    sem = fs.Semaphore(1)
    assert sem.acquire(1) is True
    assert sem.acquire(0) is False
    assert sem.acquire(blocking=[], timeout=None) is False
    with pytest.raises(ValueError, match="can't specify timeout"):
        sem.acquire(0, 1)


def test_negative_and_zero_timeouts_are_attempts():
    sem = fs.Semaphore(1)
    assert sem.acquire(timeout=-1)
    start = time.monotonic()
    assert not sem.acquire(timeout=-1)
    assert not sem.acquire(timeout=0)
    assert time.monotonic() - start < 0.5


def test_huge_timeout_waits_like_none():
    sem = fs.Semaphore(0)
    threading.Timer(0.05, sem.release).start()
    assert sem.acquire(timeout=threading.TIMEOUT_MAX)


def test_repr_of_subclass_names_it():
    class Mine(fs.Semaphore):
        pass

    assert re.fullmatch(r"<test_threading\.\S*Mine at 0x[0-9a-f]+: value=1>", repr(Mine()))


def test_blocked_acquire_releases_the_gil():
    # An acquire that kept the GIL while it waits would stop this thread for good (in
    # wait_until_blocked's sleep, or in start()): the watchdog of conftest.py then ends the run.
    sem = fs.Semaphore(0)
    t = threading.Thread(target=sem.acquire, daemon=True)
    t.start()
    _blocked.wait_until_blocked(t)
    # This thread runs Python while the other one waits.
    n = 0
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        n += 1
    assert n > 1000
    sem.release()
    t.join(5)
    assert not t.is_alive()


def test_handoff_between_two_threads():
    ping, pong = fs.Semaphore(0), fs.Semaphore(0)
    rounds = 2000

    def echo():
        for _ in range(rounds):
            ping.acquire()
            pong.release()

    t = threading.Thread(target=echo)
    t.start()
    for _ in range(rounds):
        ping.release()
        assert pong.acquire(timeout=5)
    t.join(5)
    assert (ping._value, pong._value) == (0, 0)


def test_many_threads_on_few_permits():
    sem = fs.BoundedSemaphore(2)
    inside = peak = 0
    guard = threading.Lock()

    def worker():
        nonlocal inside, peak
        for _ in range(300):
            with sem:
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert peak <= 2
    assert sem._value == 2


def test_a_blocked_acquire_in_the_main_thread_keeps_its_place():
    # 1 permit and 4 threads that each hold it 30 ms in a loop, so that each waits about 90 ms.
    # The main thread looks for signals every 50 ms while it waits; it stays queued across the
    # looks, so it gets priority like the others (it used to wait in 50 ms acquires, each of
    # which started over, and was passed over for ever: a 3 s timeout ran out every time).
    assert threading.current_thread() is threading.main_thread()
    sem = fs.Semaphore(1)
    stop = threading.Event()
    held = threading.Event()

    def worker():
        while not stop.is_set():
            with sem:
                held.set()
                time.sleep(0.03)  # the work: holding the permit

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        waits = []
        for _ in range(3):
            held.clear()
            assert held.wait(timeout=10)  # a worker holds the permit again
            time.sleep(0.2)  # the workload settles: the other workers queue behind it
            start = time.monotonic()
            got = sem.acquire(timeout=3)
            waits.append(time.monotonic() - start)
            assert got, f"the main thread's acquire timed out: {waits}"
            sem.release()
        assert max(waits) < 2, waits
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert sem._value == 1


CTRL_C = """
import os, signal, sys, threading, time
import futex_semaphore as fs

# Python leaves SIGINT ignored if it started ignored (a test run from a background job): make it
# raise KeyboardInterrupt, as in an interactive program.
signal.signal(signal.SIGINT, signal.default_int_handler)
sem = {make}
fired = []

def fire():
    time.sleep(0.3)
    fired.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=fire).start()
try:
    {call}
except KeyboardInterrupt:
    print("latency", time.monotonic() - fired[0])
else:
    sys.exit("not interrupted")
assert {value} == 0, "a permit was lost or made"
sem.release()
assert sem.acquire(timeout=2)
print("ok")
"""


@pytest.mark.parametrize(
    "make,call,value",
    [
        ("fs.Semaphore(0)", "sem.acquire()", "sem._value"),
        ("fs.BoundedSemaphore(1); sem.acquire()", "sem.acquire(timeout=30)", "sem._value"),
        ("fs.ProcessSemaphore(0)", "sem.acquire()", "sem.get_value()"),
        ("fs.ProcessSemaphore(0)", "sem.acquire(True, 30)", "sem.get_value()"),
    ],
)
def test_ctrl_c_interrupts_a_blocked_acquire_promptly(make, call, value):
    script = textwrap.dedent(CTRL_C).format(make=make, call=call, value=value)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    latency = float(re.search(r"latency (\S+)", out.stdout).group(1))
    # By design within 0.1 s (a look for signals every 50 ms, as docs/python.md says, and as
    # measured here); asserted with room for a loaded machine: what this guards against is a
    # wait that ends only at its timeout (30 s) or never.
    assert latency < 0.5, out.stdout
    assert out.stdout.rstrip().endswith("ok")


class Raised(Exception):
    """What the signal handler of the next test raises (as Ctrl-C's raises KeyboardInterrupt)."""


def bounded_with_its_permit_taken():
    sem = fs.BoundedSemaphore(1)
    assert sem.acquire()
    return sem


def acquire_interrupted(sem, handler, interrupt):
    """Blocks this (the main) thread in `sem.acquire(timeout=10)`, with `handler` for SIGUSR1 and
    `interrupt` running in another thread; the acquire must raise `Raised`."""
    previous = signal.signal(signal.SIGUSR1, handler)
    interrupter = threading.Thread(target=interrupt, daemon=True)
    try:
        interrupter.start()
        with pytest.raises(Raised):
            sem.acquire(timeout=10)  # ACQUIRE_LINE
    finally:
        signal.signal(signal.SIGUSR1, previous)
        interrupter.join(10)


# The line of the acquire in `acquire_interrupted`, where a handler may check it runs.
_LINES, _FIRST = inspect.getsourcelines(acquire_interrupted)
ACQUIRE_LINE = _FIRST + next(i for i, line in enumerate(_LINES) if line.rstrip().endswith("# ACQUIRE_LINE"))

# Each class with no permit free, and how to read its count.
WITHOUT_A_FREE_PERMIT = pytest.mark.parametrize(
    "make,value",
    [
        (lambda: fs.Semaphore(0), lambda sem: sem._value),
        (bounded_with_its_permit_taken, lambda sem: sem._value),
        (lambda: fs.ProcessSemaphore(0), lambda sem: sem.get_value()),
    ],
    ids=["Semaphore", "BoundedSemaphore", "ProcessSemaphore"],
)


@WITHOUT_A_FREE_PERMIT
def test_a_permit_that_comes_as_a_signal_handler_raises_is_not_lost(make, value):
    # The main thread, blocked in acquire(), runs signal handlers between its sleeps. This
    # handler releases a permit and then raises. Semaphore and BoundedSemaphore wait in one piece
    # (blocking.rs's wait_in_place), still queued while the handler runs: the release serves the
    # wait, which takes the permit as it ends, and must give it back as the exception comes out
    # (without that, the permit is lost: the count stays 0). ProcessSemaphore, which waits in
    # timed slices, must not lose it either.
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread()
    sem = make()
    outside = []  # handlers that ran before the acquire waited (the signal is sent again)
    handled = threading.Event()

    def handler(signum, frame):
        try:
            if frame.f_code is not acquire_interrupted.__code__ or frame.f_lineno != ACQUIRE_LINE:
                outside.append(frame.f_lineno)
                return
            sem.release()
            raise Raised
        finally:
            handled.set()

    def interrupt():
        # Sent only once the main thread sleeps in acquire; a handler run elsewhere (had the
        # main thread been in some other wait) does nothing, and the signal is sent again.
        for _ in range(20):
            _blocked.wait_until_blocked(main)
            handled.clear()
            signal.pthread_kill(main.ident, signal.SIGUSR1)
            if not handled.wait(5) or not outside:
                return
            outside.clear()

    acquire_interrupted(sem, handler, interrupt)
    assert value(sem) == 1, "the permit released by the handler was lost"
    assert sem.acquire(timeout=0)
    assert value(sem) == 0


@WITHOUT_A_FREE_PERMIT
def test_a_signal_that_came_before_the_permit_wins_over_it(make, value):
    # A signal arrives while the main thread waits, and a permit right after it, before the
    # wait's next look for signals (every 50 ms). `threading` runs the handler inside the wait,
    # so its exception comes out of acquire() with no permit taken. Before, acquire() returned
    # True and the handler ran at the caller's next bytecode: the exception came after the
    # permit was taken, outside the `try` that would give it back, and the permit was lost.
    main = threading.main_thread()
    sem = make()

    def handler(signum, frame):
        raise Raised

    def interrupt():
        _blocked.wait_until_blocked(main)
        signal.pthread_kill(main.ident, signal.SIGUSR1)
        sem.release()

    acquire_interrupted(sem, handler, interrupt)
    assert value(sem) == 1, "the permit that came after the signal was lost"


EXIT_WITH_A_WAKING_DAEMON = """
import threading, time
import futex_semaphore as fs
sem = {make}
for _ in range(4):
    threading.Thread(target={target}, daemon=True).start()
time.sleep(0.05)
for _ in range(4):
    sem.release()  # the daemon threads wake while the interpreter exits
"""


@pytest.mark.parametrize(
    "make,target",
    [
        ("fs.Semaphore(0)", "sem.acquire"),
        ("fs.Semaphore(0)", "lambda: [sem.acquire(timeout=0.01) for _ in iter(int, 1)]"),
        ("fs.ProcessSemaphore(0)", "sem.acquire"),
    ],
    ids=["blocking", "polling", "ProcessSemaphore"],
)
def test_daemon_threads_woken_at_exit_do_not_abort_the_process(make, target):
    # Before Python 3.14, a daemon thread that takes the GIL back once the interpreter has begun
    # to finalize is ended by `pthread_exit`, which aborted the process when the package's Rust
    # frames were on its stack (exit status -6, "FATAL: exception not rethrown"; 14-20 of 20
    # runs). Such threads now stay asleep (python/src/shutdown.rs).
    script = EXIT_WITH_A_WAKING_DAEMON.format(make=make, target=target)
    for _ in range(10):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.returncode, out.stderr)


EXIT_WITH_A_DAEMON_LOOP = """
import asyncio, threading, time
import futex_semaphore as fs
sem = fs.AsyncSemaphore(1)

def run_loop():
    async def task():
        while True:
            async with sem:  # its release may wake a task of the other loop
                await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*[task() for _ in range(5)])

    asyncio.run(main())

for _ in range(2):
    threading.Thread(target=run_loop, daemon=True).start()
time.sleep(0.1)
"""


def test_daemon_event_loops_at_exit_do_not_abort_the_process():
    # As above, for a release in a daemon thread's event loop that wakes a task of another loop
    # (`call_soon_threadsafe` lets the GIL go): it aborted the process in 11 of 20 runs.
    for _ in range(10):
        out = subprocess.run([sys.executable, "-c", EXIT_WITH_A_DAEMON_LOOP], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.returncode, out.stderr)


def test_a_bounded_semaphore_whose_handler_released_raises_the_handlers_exception():
    # As above, with a handler that releases the semaphore before it raises: the permit the
    # wait took cannot go back past the bound (every permit is free already). The handler's
    # exception must still be what comes out (it was a ValueError about the give-back).
    main = threading.main_thread()
    sem = bounded_with_its_permit_taken()

    def handler(signum, frame):
        sem.release()
        raise Raised

    def interrupt():
        _blocked.wait_until_blocked(main)
        signal.pthread_kill(main.ident, signal.SIGUSR1)
        try:
            sem.release()
        except ValueError:
            pass  # the handler ran first, inside the wait, and its release served it

    acquire_interrupted(sem, handler, interrupt)
    assert sem._value == 1


LATE_EXIT_HOOK = """
import atexit, threading

def stop():
    # Registered before the package is imported, so it runs after any exit hook of the
    # package's: the interpreter is still fully alive, and a thread it wakes must run.
    sem.release()
    waiter.join(10)
    print("joined" if not waiter.is_alive() else "stuck", flush=True)

atexit.register(stop)
import futex_semaphore as fs
sem = {make}
waiter = threading.Thread(target=sem.acquire, daemon=True)
waiter.start()
import time
time.sleep(0.05)  # likely asleep by now; the join above holds either way
"""


@pytest.mark.parametrize("make", ["fs.Semaphore(0)", "fs.ProcessSemaphore(0)"])
def test_a_thread_woken_by_an_exit_hook_runs(make):
    # A first fix for the aborts above closed a gate from an atexit hook, too early: a hook
    # registered before the import ran after it, and the daemon thread it woke slept for good
    # (the join hung: 20 of 20 runs of a review's reproducer).
    out = subprocess.run(
        [sys.executable, "-c", LATE_EXIT_HOOK.format(make=make)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, (out.returncode, out.stderr)
    assert out.stdout.strip() == "joined", out.stdout
