"""An advisory lock on a run folder, held for the run's life: two trainers never share one.

``fcntl.flock`` is released by the kernel when its process dies, so a lock left by a killed
run is never stale; the lock file records the holder's PID for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class RunFolderBusy(ValueError):
    """Another live process is training into the same run folder."""


@contextlib.contextmanager
def run_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the body (the main process of a run takes it)."""
    if not enabled:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RunFolderBusy(
                f"{run_dir} is in use by {holder}; wait for it to finish, stop it (it checkpoints "
                "on SIGTERM), or use another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock
