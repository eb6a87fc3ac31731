"""Reads for the watchdog's tests, importable by name so that they pickle into a fresh interpreter."""

from __future__ import annotations

import os
import signal

IN_THE_TEST_PROCESS = False  # set by the test; a forked child inherits it, a fresh interpreter does not


def crash_if_forked_from_the_tests() -> str:
    """Dies of SIGSEGV in a child forked from the test process (as a forked reader once did in a full test run,
    on a sound file); a fresh interpreter returns."""
    if IN_THE_TEST_PROCESS:
        os.kill(os.getpid(), signal.SIGSEGV)
    return "read in a fresh interpreter"


def always_crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
