"""A watchdog for every test: a test that hangs (say, a blocked `acquire()` that kept the GIL,
which no Python-level timeout can interrupt) ends the run with every thread's traceback instead
of hanging it."""

import faulthandler
import sys

import pytest

# Seconds: the slowest test takes under 2 s, the whole suite under a minute.
WATCHDOG = 60


def _stderr(config):
    """The run's real stderr (pytest captures fd 2 while a test runs): the copy pytest's
    faulthandler plugin keeps, else `sys.__stderr__`."""
    try:
        from _pytest import faulthandler as plugin
    except ImportError:
        return sys.__stderr__
    for name in ("fault_handler_stderr_fd_key", "fault_handler_stderr_key"):  # pytest 8+, 7
        key = getattr(plugin, name, None)
        if key is not None and key in config.stash:
            return config.stash[key]
    return sys.__stderr__


@pytest.fixture(autouse=True)
def watchdog(request):
    # exit=True: the dump is made by faulthandler's own thread, without the GIL, and the process
    # exits with status 1 (a failure) after it.
    faulthandler.dump_traceback_later(WATCHDOG, exit=True, file=_stderr(request.config))
    yield
    faulthandler.cancel_dump_traceback_later()
