"""Runs a script in a fresh interpreter whose `futex_semaphore` has its test hooks
(`python/src/test_hooks.rs`, attached only where `_FUTEX_SEMAPHORE_TEST_HOOKS` is set at import).
The script starts with `fs` (the package) and `hooks` (the extension module, which holds the hooks:
an installed package re-exports only its public names) in scope."""

import os
import subprocess
import sys

PRELUDE = 'import futex_semaphore as fs\nhooks = getattr(fs, "futex_semaphore", fs)\n'


def run(script, *args):
    env = dict(os.environ, _FUTEX_SEMAPHORE_TEST_HOOKS="1")
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *args], capture_output=True, text=True, timeout=60, env=env
    )
