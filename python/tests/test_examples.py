"""Runs each tutorial scenario in examples/python and checks its story from what it prints: a
line when a permit is taken and one when it is given back, so replaying them counts at most
the real number of holders."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")

# script, pattern of an (enter|leave) event with the holder's id, limit, holders expected
SCENARIOS = [
    ("workers.py", r"(performing|finished) task (\d+)", 3, 10),
    ("shared_resource.py", r"client (\d+) (connected|disconnected)", 2, 5),
    ("thread_pool.py", r"job (\d+) (started|finished)", 3, 12),
    ("bank_tellers.py", r"(\w+) (is being served|is done)", 2, 5),
    ("multiprocessing_workers.py", r"worker (\d+) \(pid \d+\) (acquired|released)", 2, 3),
    ("asyncio_workers.py", r"(worker \d+) (acquired|released)", 2, 3),
    ("timeout.py", r"thread (\d+) (acquired|releasing)", 2, 2),
]
ENTER = {"performing", "connected", "started", "is being served", "acquired"}


def run_example(script):
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("script,pattern,limit,holders", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_example_never_lets_more_in_than_the_limit(script, pattern, limit, holders):
    stdout = run_example(script)
    inside, peak, served = set(), 0, set()
    for m in re.finditer(pattern, stdout):
        a, b = m.groups()
        event, who = (a, b) if not a.isdigit() and a in ENTER | {"finished"} else (b, a)
        if event in ENTER:
            inside.add(who)
            served.add(who)
            peak = max(peak, len(inside))
        else:
            assert who in inside, stdout
            inside.remove(who)
    assert not inside, stdout
    assert peak == limit, stdout
    assert len(served) == holders, stdout


def test_timeout_example_gives_up_three_times():
    assert run_example("timeout.py").count("gave up") == 3


def test_bounded_example_refuses():
    stdout = run_example("bounded.py")
    assert "BoundedSemaphore refused: Semaphore released too many times" in stdout
    assert "value is now 3" in stdout
