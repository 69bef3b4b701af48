"""Functions run in multiprocessing children (importable by name, for the spawn start method)."""

import os
import time

import futex_semaphore as fs


def hold_for_a_while(sem, inside, peak, lock, rounds):
    for _ in range(rounds):
        with sem:
            with lock:
                inside.value += 1
                peak.value = max(peak.value, inside.value)
            time.sleep(0.002)
            with lock:
                inside.value -= 1


def acquire_and_hang(sem, ready):
    sem.acquire()
    ready.set()
    time.sleep(60)


def release_once(sem):
    time.sleep(0.1)
    sem.release()


def report_value(sem, queue):
    queue.put((sem.get_value(), sem.name, os.getpid()))


def acquire_and_exit(sem):
    # Returns without releasing: a normal end, so the permit stays taken (as multiprocessing).
    assert sem.acquire(timeout=5)


def acquire_and_raise(sem):
    # Ends with an uncaught exception: still a normal end for multiprocessing (its finalizers
    # run before the child's os._exit), so the permit stays taken.
    assert sem.acquire(timeout=5)
    raise RuntimeError("the target failed (expected by the test)")


def acquire_and_os_exit(sem):
    # Ends by its own os._exit, skipping multiprocessing's finalizers: abnormal, recovered.
    assert sem.acquire(timeout=5)
    os._exit(0)


def acquire_in_a_thread_after_the_target_returns(sem):
    # A non-daemon thread that acquires after the target has returned, once multiprocessing's
    # finalizers have run (the child's end then waits for it): that permit stays taken too.
    import threading

    def late():
        time.sleep(0.3)
        assert sem.acquire(timeout=5)

    threading.Thread(target=late).start()


def produce(empty, full, n):
    # The textbook producer: takes a free slot, then signals an item (never releases `empty`).
    for _ in range(n):
        assert empty.acquire(timeout=10)
        full.release()


def consume(empty, full, n):
    # The textbook consumer: takes an item, then frees its slot (never releases `full`).
    for _ in range(n):
        assert full.acquire(timeout=10)
        empty.release()


def acquire_release_and_hang(sem, taken, released, ready):
    # Holds `taken - released` permits: the ones given back must not come back again.
    for _ in range(taken):
        assert sem.acquire(timeout=5)
    for _ in range(released):
        sem.release()
    ready.set()
    time.sleep(60)



KEPT = []


def create_and_keep(queue):
    # Alive when the child ends (multiprocessing's children end with os._exit: no atexit).
    import futex_semaphore as fs

    KEPT.append(fs.ProcessSemaphore(1))
    queue.put(KEPT[-1].name)



class SlottedProcessSemaphore(fs.ProcessSemaphore):
    """A subclass whose attribute is in `__slots__`, and one with its own `__getstate__`."""

    __slots__ = ("tag",)


class StatefulProcessSemaphore(fs.ProcessSemaphore):
    def __getstate__(self):
        return {"tag": self.tag, "pickled": True}


class TaggedProcessSemaphore(fs.ProcessSemaphore):
    """A subclass with an attribute of its own, importable by name (for pickling)."""

    def __init__(self, value, tag):
        super().__init__(value)
        self.tag = tag

    def describe(self):
        return f"{type(self).__name__}:{self.tag}"


def report_subclass(sem, queue):
    queue.put((sem.describe(), sem.get_value(), sem.name))
