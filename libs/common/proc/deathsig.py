"""Children that end with their parent: a pre-exec hook asking the kernel (prctl
PR_SET_PDEATHSIG) to signal the child when the process that started it dies, however it dies
(SIGKILL, the OOM killer), so a crashed `wolfpack up` leaves no process holding its ports.

The signal follows the *thread* that forked: start such children from the event loop's
thread, never from a worker thread that may end first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable
from typing import Final

PR_SET_PDEATHSIG: Final = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """The pre-exec hook (None where libc cannot be found): `sig` to the child at our death.
    Make it in the process that forks (it remembers this pid).
    SIGTERM by default, so the child still shuts down cleanly (nats-server flushes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)  # loaded before fork: the hook only calls it

    parent = os.getpid()

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # we died between the fork and the prctl
            os.kill(os.getpid(), sig)

    return hook
