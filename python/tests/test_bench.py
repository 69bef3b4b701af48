"""bench.py runs (a quick smoke run: the figures are for docs/python.md, not for tests)."""

import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench.py")


def test_bench_quick_run_prints_every_scenario():
    out = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    for title in ["uncontended", "with sem", "two-thread handoff", "8 threads", "asyncio", "100 tasks on 4 permits", "cross-process"]:
        assert title in out.stdout, out.stdout


def test_bench_process_only_prints_the_process_rows():
    out = subprocess.run([sys.executable, BENCH, "--quick", "--process"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in ["multiprocessing.Semaphore", "futex_semaphore.ProcessSemaphore", "recover=False"]:
        assert name in out.stdout, out.stdout
    assert "two-thread handoff" not in out.stdout, out.stdout
