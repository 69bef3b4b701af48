"""Semaphore / BoundedSemaphore beyond CPython's lock_tests: the GIL, Ctrl-C, and details of
threading's API."""

import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import futex_semaphore as fs


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
    sem = fs.Semaphore(0)
    t = threading.Thread(target=sem.acquire)
    t.start()
    time.sleep(0.05)
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
def test_ctrl_c_interrupts_a_blocked_acquire_within_a_tenth_of_a_second(make, call, value):
    script = textwrap.dedent(CTRL_C).format(make=make, call=call, value=value)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    latency = float(re.search(r"latency (\S+)", out.stdout).group(1))
    assert latency < 0.1, out.stdout
    assert out.stdout.rstrip().endswith("ok")
