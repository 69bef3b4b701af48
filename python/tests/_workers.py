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
    # Exits without releasing: the permit of a dead holder comes back.
    assert sem.acquire(timeout=5)


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
