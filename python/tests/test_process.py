"""ProcessSemaphore against multiprocessing.Semaphore's semantics, under fork and spawn, with a
killed holder, and leaving nothing in /dev/shm."""

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import futex_semaphore as fs

import _workers

START_METHODS = ["fork", "spawn"]


def shm_exists(name):
    return os.path.exists(os.path.join("/dev/shm", name))


def test_semantics_of_multiprocessing_semaphore():
    sem = fs.ProcessSemaphore(2)
    assert sem.get_value() == 2
    assert sem.acquire() is True
    assert sem.acquire(block=False) is True
    assert sem.acquire(False) is False
    start = time.monotonic()
    assert sem.acquire(timeout=0.1) is False
    assert 0.06 <= time.monotonic() - start < 2
    assert sem.acquire(True, -1) is False  # a negative timeout is an attempt
    sem.release()
    assert sem.get_value() == 1
    with sem:
        assert sem.get_value() == 0
    assert sem.get_value() == 1
    sem.release()
    sem.release()  # unbounded, as multiprocessing.Semaphore
    assert sem.get_value() == 3
    assert repr(sem) == "<ProcessSemaphore(value=3)>"


def test_constructor_rejects_negative_values():
    # `multiprocessing.Semaphore(-1)` raises `OSError(EINVAL)`; this says why, as `threading`.
    with pytest.raises(ValueError, match="semaphore initial value must be >= 0"):
        fs.ProcessSemaphore(-1)
    assert fs.ProcessSemaphore().get_value() == 1


def test_pickle_in_the_same_process_shares_the_semaphore():
    sem = fs.ProcessSemaphore(1)
    other = pickle.loads(pickle.dumps(sem))
    assert other.name == sem.name
    assert other.acquire(False)
    assert sem.get_value() == 0
    sem.release()  # the permit taken through the other handle
    assert other.get_value() == 1


def test_a_subclass_s_instance_pickles_to_one_of_its_class():
    sem = _workers.TaggedProcessSemaphore(2, "t")
    other = pickle.loads(pickle.dumps(sem))
    assert type(other) is type(sem) and other.describe() == "TaggedProcessSemaphore:t"
    assert other.name == sem.name
    assert other.acquire(False) and sem.get_value() == 1
    sem.release()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="object.__getstate__ is 3.11+")
@pytest.mark.parametrize("cls", ["SlottedProcessSemaphore", "StatefulProcessSemaphore"])
def test_a_subclass_s_slots_and_getstate_survive_pickling(cls):
    sem = getattr(_workers, cls)(1)
    sem.tag = "t"
    other = pickle.loads(pickle.dumps(sem))
    assert type(other) is type(sem) and other.tag == "t" and other.name == sem.name
    if cls == "StatefulProcessSemaphore":
        assert other.pickled is True


@pytest.mark.parametrize("method", ["spawn"])
def test_a_subclass_s_instance_reaches_a_spawned_child_as_one_of_its_class(method):
    ctx = mp.get_context(method)
    sem = _workers.TaggedProcessSemaphore(3, "child")
    sem.acquire()
    queue = ctx.Queue()
    p = ctx.Process(target=_workers.report_subclass, args=(sem, queue))
    p.start()
    reported = queue.get(timeout=30)
    p.join(30)
    assert reported == ("TaggedProcessSemaphore:child", 2, sem.name)
    sem.release()


def test_name_is_unlinked_when_the_last_handle_goes():
    sem = fs.ProcessSemaphore(1)
    name = sem.name
    assert shm_exists(name)
    del sem
    assert not shm_exists(name)


def test_a_process_that_holds_none_releases_a_new_permit():
    sem = fs.ProcessSemaphore(0, recover=False)
    sem.release()
    assert sem.acquire(False)
    assert sem.get_value() == 0


@pytest.mark.parametrize("method", START_METHODS)
def test_children_share_the_permits(method):
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(2)
    inside, peak, lock = ctx.Value("i", 0, lock=False), ctx.Value("i", 0, lock=False), ctx.Lock()
    procs = [ctx.Process(target=_workers.hold_for_a_while, args=(sem, inside, peak, lock, 20)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert peak.value == 2
    assert sem.get_value() == 2


@pytest.mark.parametrize("method", START_METHODS)
def test_child_sees_the_same_region(method):
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(3)
    sem.acquire()
    queue = ctx.Queue()
    p = ctx.Process(target=_workers.report_value, args=(sem, queue))
    p.start()
    value, name, pid = queue.get(timeout=30)
    p.join(30)
    assert (value, name) == (2, sem.name)
    assert pid != os.getpid()
    sem.release()


@pytest.mark.parametrize("method", START_METHODS)
def test_release_from_another_process_wakes_a_waiter(method):
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(0)
    p = ctx.Process(target=_workers.release_once, args=(sem,))
    p.start()
    assert sem.acquire(timeout=30)
    p.join(30)


def _kill_a_holder(ctx, sem):
    """Starts a child (under `ctx`) that takes one of `sem`'s permits and hangs, checks that it
    holds it, and kills it with SIGKILL."""
    before = sem.get_value()
    ready = ctx.Event()
    p = ctx.Process(target=_workers.acquire_and_hang, args=(sem, ready))
    p.start()
    assert ready.wait(30)
    assert sem.get_value() == before - 1
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("method", START_METHODS)
def test_permit_of_a_killed_holder_comes_back(method):
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(1)
    _kill_a_holder(ctx, sem)
    start = time.monotonic()
    assert sem.acquire(timeout=5), "the killed holder's permit did not come back"
    assert time.monotonic() - start < 2
    sem.release()
    assert sem.get_value() == 1


@pytest.mark.parametrize("method", START_METHODS)
def test_a_killed_holder_gives_back_exactly_the_permits_it_still_held(method):
    # 3 taken, 1 given back, then killed: 2 come back, not 3 (never an extra permit).
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(4)
    ready = ctx.Event()
    p = ctx.Process(target=_workers.acquire_release_and_hang, args=(sem, 3, 1, ready))
    p.start()
    assert ready.wait(30)
    assert sem.get_value() == 2
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert sem.recover() == 2
    assert sem.get_value() == 4


def test_permits_taken_by_some_threads_are_given_back_by_others():
    # The process's permits are one count: any thread releases any of them, blocking acquires'
    # too, and a release past them adds a permit.
    import threading

    sem = fs.ProcessSemaphore(3)
    threads = [threading.Thread(target=sem.acquire) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sem.get_value() == 0
    releaser = threading.Timer(0.1, sem.release)
    releaser.start()
    assert sem.acquire(timeout=5)  # blocked, then got the permit given back
    releaser.join()
    for _ in range(3):
        threading.Thread(target=sem.release).start()
    deadline = time.monotonic() + 5
    while sem.get_value() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sem.get_value() == 3
    sem.release()  # none held now: a new permit
    assert sem.get_value() == 4
    assert sem.recover() == 0


@pytest.mark.parametrize("method", START_METHODS)
def test_without_recovery_a_killed_holders_permit_stays_taken(method):
    # recover=False is multiprocessing's bare count: nothing recorded, nothing given back.
    ctx = mp.get_context(method)
    sem = fs.ProcessSemaphore(1, recover=False)
    _kill_a_holder(ctx, sem)
    assert sem.recover() == 0
    assert not sem.acquire(timeout=0.3)
    assert sem.get_value() == 0


def test_a_forked_child_holds_none_of_the_parents_permits():
    sem = fs.ProcessSemaphore(2)
    sem.acquire()
    pid = os.fork()
    if pid == 0:
        # The child's release adds a permit: it does not give back the parent's.
        code = 0
        try:
            sem.release()
            code = 0 if sem.get_value() == 2 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sem.get_value() == 2
    sem.release()  # the parent's own permit
    assert sem.get_value() == 3


NOTHING_LEFT = """
import multiprocessing as mp, sys
import futex_semaphore as fs
sys.path.insert(0, {tests!r})
import _workers

if __name__ == "__main__":
    mp.set_start_method({method!r})
    sem = fs.ProcessSemaphore(2)
    print(sem.name)
    kept = fs.ProcessSemaphore(1)  # alive at exit: unlinked by atexit
    print(kept.name)
    procs = [mp.Process(target=_workers.acquire_and_exit, args=(sem,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("value", sem.get_value(), flush=True)
    {end}
"""


@pytest.mark.parametrize("method", START_METHODS)
def test_nothing_is_left_in_dev_shm_after_a_normal_exit(method):
    script = textwrap.dedent(NOTHING_LEFT).format(tests=os.path.dirname(__file__), method=method, end="")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()[:2]
    assert not any(shm_exists(n) for n in names), names
    assert "leaked" not in out.stderr, out.stderr


def test_a_killed_creators_region_is_unlinked_by_the_resource_tracker():
    end = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    script = textwrap.dedent(NOTHING_LEFT).format(tests=os.path.dirname(__file__), method="spawn", end=end)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL
    names = out.stdout.split()[:2]
    deadline = time.monotonic() + 10
    while any(shm_exists(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(shm_exists(n) for n in names), names


FREED_WHILE_AN_EXCEPTION_PROPAGATES = """
import futex_semaphore as fs

def check(f):
    try:
        f()
    except BaseException as e:
        print(type(e).__name__, e)

def m():
    s = fs.ProcessSemaphore(1)
    try:
        raise ValueError("inner")
    finally:
        del s

check(lambda: fs.ProcessSemaphore(1).acquire(timeout="1"))
check(lambda: [fs.ProcessSemaphore(1), 1 / 0])
check(m)
try:
    [fs.ProcessSemaphore(1), 1 / 0]
except ZeroDivisionError as e:
    print("caught", e)
print("alive")
"""


def test_a_handle_freed_while_an_exception_propagates_keeps_the_exception():
    # Its drop unlinks the region and tells the resource tracker, in Python: that must neither
    # lose the exception being raised nor crash.
    out = subprocess.run(
        [sys.executable, "-c", FREED_WHILE_AN_EXCEPTION_PROPAGATES], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "TypeError must be real number, not str",
        "ZeroDivisionError division by zero",
        "ValueError inner",
        "caught division by zero",
        "alive",
    ]
    assert "leaked" not in out.stderr, out.stderr


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_region_a_child_created_is_unlinked_when_the_child_ends(method):
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    p = ctx.Process(target=_workers.create_and_keep, args=(queue,))
    p.start()
    name = queue.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert not shm_exists(name)


@pytest.mark.parametrize("poll", ["attempts", "short timeouts"])
def test_polling_recovers_a_killed_holders_permit(poll):
    # Neither an attempt nor a 50 ms wait lasts the crate's 100 ms recovery interval.
    ctx = mp.get_context("fork")
    sem = fs.ProcessSemaphore(1)
    _kill_a_holder(ctx, sem)
    deadline = time.monotonic() + 5
    got = False
    while not got and time.monotonic() < deadline:
        if poll == "attempts":
            got = sem.acquire(False)
            time.sleep(0.01)  # the polling program's own pace
        else:
            got = sem.acquire(timeout=0.05)
    assert got, "the killed holder's permit did not come back"
    assert sem.get_value() == 0
    sem.release()
    assert sem.get_value() == 1
