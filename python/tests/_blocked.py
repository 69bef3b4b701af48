"""Waiting until a thread is blocked (asleep in a futex wait, as in `acquire()`), instead of
sleeping a while and assuming it is: read from `/proc/self/task/<tid>/`."""

import platform
import time

# The futex system call's number by machine (`uname -m`); None: unknown here, the thread's state
# is all that is looked at.
FUTEX = {
    "x86_64": 202,
    "aarch64": 98,
    "arm64": 98,
    "riscv64": 98,
    "loongarch64": 98,
    "i386": 240,
    "i686": 240,
    "armv7l": 240,
    "armv6l": 240,
    "ppc64": 221,
    "ppc64le": 221,
    "s390x": 238,
}.get(platform.machine())


def _asleep_in(tid):
    """Where thread `tid` of this process sleeps: the address of the futex word it waits on (its
    state alone, "S" or "D", if the system call cannot be read), or None if it is not asleep in
    a futex wait."""
    base = f"/proc/self/task/{tid}"
    try:
        with open(f"{base}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        raise AssertionError(f"thread {tid} ended instead of blocking") from None
    state = stat[stat.rindex(")") + 2]
    if state not in "SD":
        return None
    if FUTEX is None:
        return state
    try:
        with open(f"{base}/syscall") as f:
            fields = f.read().split()
    except OSError:  # a kernel without it, or no access
        return state
    # "nr arg1 ... arg6 sp pc" in a system call; "running", or "-1 sp pc" outside one.
    if len(fields) < 2 or fields[0] != str(FUTEX):
        return None
    return fields[1]


def wait_until_blocked(thread, timeout=10.0, looks=3, gap=0.005):
    """Returns once `thread` (started) has been seen asleep in a futex wait on the same word
    `looks` times in a row, `gap` seconds apart; raises AssertionError if it has not after
    `timeout` seconds, or ended. Several looks, during which the caller sleeps (without the GIL),
    so that a thread only waiting its turn for the GIL, or passing through some other short
    wait, is not taken for one blocked."""
    tid = thread.native_id
    assert tid is not None, "the thread has not started"
    deadline = time.monotonic() + timeout
    last, seen = None, 0
    while True:
        site = _asleep_in(tid)
        seen = 0 if site is None else seen + 1 if site == last else 1
        last = site
        if seen >= looks:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {tid} did not block within {timeout} s")
        time.sleep(gap)
