"""An exclusive lock file naming its owner: for run folders and for generating a synthetic twin.

The file is created atomically (``O_EXCL``) and holds the owner's pid, host and start time. A
lock whose process is gone (a killed run on this host) is stale: it is removed with a warning
and taken over. :func:`exclusive` either fails at once (``wait=0``) with :class:`Locked`
naming the owner, or waits for the owner to finish.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path


class Locked(RuntimeError):
    """Another live process holds the lock; the message names it and what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def owner(path: Path) -> dict:
    """What the lock file says of its owner (empty while it is being written, or when unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def exclusive(path: Path | str, what: str, advice: str, wait: float = 0.0, poll: float = 0.2) -> Iterator[Path]:
    """Hold the lock file ``path`` for the ``with`` block; ``what`` and ``advice`` word the error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    deadline = time.monotonic() + wait
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = owner(path)
            pid, host = held.get("pid"), held.get("host")
            if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                warnings.warn(f"{path}: its owner (pid {pid}, started {held.get('started')}) is gone; taking over.",
                              stacklevel=3)
                path.unlink(missing_ok=True)
                continue
            if time.monotonic() < deadline:
                time.sleep(poll)
                continue
            raise Locked(f"{what} is in use by another process (pid {pid} on {host}, started {held.get('started')}). "
                         f"{advice} If that process no longer exists, delete {path}.") from None
        with os.fdopen(handle, "w") as out:
            json.dump(me, out)
        break
    try:
        yield path
    finally:
        if owner(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
