"""Real-time scheduling for the threads and processes that must meet every audio period."""

from __future__ import annotations

import os
import sys


def become_realtime(priority: int) -> bool:
    """SCHED_FIFO for the calling thread if permitted; otherwise say so and carry on.

    With SCHED_RESET_ON_FORK: threads and processes started from here begin at normal
    priority (a helper process must not spin at real-time priority by accident); those that
    should be real-time (the engine process, the supervisor thread) ask for it themselves."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        print(
            f"audio engine: SCHED_FIFO refused ({exc}); running at normal priority",
            file=sys.stderr,
        )
        return False
    return True


def scheduling_of_this_thread() -> tuple[int, int]:
    """(policy without the reset-on-fork flag, priority) of the calling thread."""
    return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority


def take_on_scheduling(policy: int, priority: int) -> None:
    """Give the calling thread a real-time policy noted elsewhere (nothing for SCHED_OTHER)."""
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        os.sched_setscheduler(0, policy | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
