"""futex_semaphore beside the standard library's semaphores, in one run.

    python python/bench.py            # about half a minute
    python python/bench.py --quick    # a smoke run (the tests use it)
    python python/bench.py --process  # only ProcessSemaphore's uncontended pair, 25 turns

Each figure is the best of several runs, in nanoseconds per operation (lower is better); the
ratio column is the standard-library baseline of that scenario divided by the figure (higher is
better). Scenarios: uncontended acquire+release, `with`, a two-thread handoff round trip, 8
threads on 2 permits, asyncio `async with`, and a cross-process handoff round trip.
"""

import asyncio
import multiprocessing as mp
import sys
import threading
import time

import futex_semaphore as fs

QUICK = "--quick" in sys.argv
# The uncontended pair of ProcessSemaphore (recorded and not) beside multiprocessing.Semaphore's,
# taking turns 25 times: the best of 25 holds up on a loaded host better than the best of 7.
PROCESS_ONLY = "--process" in sys.argv
SCALE = 0.02 if QUICK else 1.0
REPEATS = 1 if QUICK else 25 if PROCESS_ONLY else 7


def n(count):
    return max(10, int(count * SCALE))


def best(fn, ops):
    """A measurement: fn() does `ops` operations; the driver times it (see `measure`)."""
    return fn, ops


def measure(benches):
    """Runs each (fn, ops) REPEATS times, taking turns (so that a noisy moment of a shared
    machine hits every implementation alike); returns the best time of each, in ns per op."""
    times = [[] for _ in benches]
    for _ in range(REPEATS):
        for i, (fn, ops) in enumerate(benches):
            start = time.perf_counter_ns()
            fn()
            times[i].append((time.perf_counter_ns() - start) / ops)
    return [min(t) for t in times]


def uncontended(make):
    sem = make()
    count = n(300_000)

    def run():
        acquire, release = sem.acquire, sem.release
        for _ in range(count):
            acquire()
            release()

    return best(run, count)


def with_block(make):
    sem = make()
    count = n(300_000)

    def run():
        for _ in range(count):
            with sem:
                pass

    return best(run, count)


def handoff(make):
    """A round trip: this thread releases `ping`, the other takes it and releases `pong`."""
    rounds = n(5_000)

    def run():
        ping, pong = make(), make()

        def echo():
            for _ in range(rounds):
                ping.acquire()
                pong.release()

        t = threading.Thread(target=echo)
        t.start()
        for _ in range(rounds):
            ping.release()
            pong.acquire()
        t.join()

    return best(run, rounds)


def eight_on_two(make):
    """8 threads, each `with sem: pass` in a loop, on 2 permits: ns per acquire+release overall."""
    per_thread = n(20_000)

    def run():
        sem = make()
        go = threading.Barrier(9)

        def worker():
            go.wait()
            for _ in range(per_thread):
                with sem:
                    pass

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        go.wait()
        for t in threads:
            t.join()

    return best(run, 8 * per_thread)


def async_with(make):
    count = n(200_000)

    async def main():
        sem = make()
        for _ in range(count):
            async with sem:
                pass

    return best(lambda: asyncio.run(main()), count)


def async_contended(make):
    """100 tasks on one loop share 4 permits, each holding one across a loop turn: most acquires
    wait, and each release wakes a waiter on the same loop."""
    tasks, rounds = 100, n(200)

    async def main():
        sem = make()

        async def worker():
            for _ in range(rounds):
                async with sem:
                    await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(tasks)))

    return best(lambda: asyncio.run(main()), tasks * rounds)


def _echo(ping, pong, rounds):
    for _ in range(rounds):
        ping.acquire()
        pong.release()


def cross_process(make):
    rounds = n(5_000)
    ctx = mp.get_context("fork")

    def run():
        ping, pong = make(), make()
        p = ctx.Process(target=_echo, args=(ping, pong, rounds))
        p.start()
        for _ in range(rounds):
            ping.release()
            pong.acquire()
        p.join()

    return best(run, rounds)


def main():
    print(f"Python {sys.version.split()[0]}, futex_semaphore {fs.__version__}{' (quick run)' if QUICK else ''}")
    print("ns per operation, best of", REPEATS, "(lower is better); ratio = baseline / this (higher is better)\n")
    one = lambda cls: (lambda: cls(1))  # noqa: E731
    zero = lambda cls: (lambda: cls(0))  # noqa: E731
    two = lambda cls: (lambda: cls(2))  # noqa: E731
    scenarios = [
        ("uncontended acquire+release", uncontended, [
            ("threading.Semaphore", one(threading.Semaphore)),
            ("threading.BoundedSemaphore", one(threading.BoundedSemaphore)),
            ("multiprocessing.Semaphore", one(mp.Semaphore)),
            ("threading.Lock (for scale)", threading.Lock),
            ("futex_semaphore.Semaphore", one(fs.Semaphore)),
            ("futex_semaphore.BoundedSemaphore", one(fs.BoundedSemaphore)),
            ("futex_semaphore.ProcessSemaphore", one(fs.ProcessSemaphore)),
        ]),
        ("with sem: pass", with_block, [
            ("threading.Semaphore", one(threading.Semaphore)),
            ("multiprocessing.Semaphore", one(mp.Semaphore)),
            ("futex_semaphore.Semaphore", one(fs.Semaphore)),
            ("futex_semaphore.ProcessSemaphore", one(fs.ProcessSemaphore)),
        ]),
        ("two-thread handoff (round trip)", handoff, [
            ("threading.Semaphore", zero(threading.Semaphore)),
            ("multiprocessing.Semaphore", zero(mp.Semaphore)),
            ("futex_semaphore.Semaphore", zero(fs.Semaphore)),
        ]),
        ("8 threads on 2 permits (per acquire+release)", eight_on_two, [
            ("threading.Semaphore", two(threading.Semaphore)),
            ("multiprocessing.Semaphore", two(mp.Semaphore)),
            ("futex_semaphore.Semaphore", two(fs.Semaphore)),
        ]),
        ("asyncio: async with sem: pass", async_with, [
            ("asyncio.Semaphore", one(asyncio.Semaphore)),
            ("futex_semaphore.AsyncSemaphore", one(fs.AsyncSemaphore)),
            ("futex_semaphore.Semaphore", one(fs.Semaphore)),
        ]),
        ("asyncio: 100 tasks on 4 permits (async with sem: await asyncio.sleep(0))", async_contended, [
            ("asyncio.Semaphore", lambda: asyncio.Semaphore(4)),
            ("futex_semaphore.AsyncSemaphore", lambda: fs.AsyncSemaphore(4)),
            ("futex_semaphore.Semaphore", lambda: fs.Semaphore(4)),
        ]),
        ("cross-process handoff (round trip, fork)", cross_process, [
            ("multiprocessing.Semaphore", zero(mp.Semaphore)),
            ("futex_semaphore.ProcessSemaphore", zero(fs.ProcessSemaphore)),
        ]),
    ]
    if PROCESS_ONLY:
        scenarios = [("uncontended acquire+release", uncontended, [
            ("multiprocessing.Semaphore", one(mp.Semaphore)),
            ("futex_semaphore.ProcessSemaphore", one(fs.ProcessSemaphore)),
            ("ProcessSemaphore(recover=False)", lambda: fs.ProcessSemaphore(1, recover=False)),
        ])]
    for title, bench, impls in scenarios:
        print(f"## {title}")
        figures = measure([bench(make) for _, make in impls])
        for (name, _), ns in zip(impls, figures):
            print(f"  {name:36} {ns:12.0f} ns   {figures[0] / ns:6.2f}x", flush=True)
        print()


if __name__ == "__main__":
    main()
