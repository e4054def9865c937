"""Small helpers for tests: file writing for tests that build dataset layouts by hand, and subprocesses that leave
nothing running behind them.

Subprocesses: :func:`run` (for ``subprocess.run``) and :func:`process_tree` (for ``subprocess.Popen``) start the
command in a new session and, when the call or the ``with`` block ends (normally, on a timeout, an exception or
Ctrl-C), kill everything the command started: its session and process group, and the descendants that left them
(Jupyter kernels start in sessions of their own), found on Linux through ``/proc``: the parent links of
``/proc/*/stat``, and a variable unique to the call that the command's environment carries, which finds the
descendants whose parent already exited. Each gets SIGTERM, then SIGKILL after :data:`GRACE_S`. Elsewhere the
command's process group is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GRACE_S = 3.0  # between SIGTERM and SIGKILL
PROC = Path("/proc")
MARK_PREFIX = "VIREID_TEST_TREE_"  # + a hex id: the environment variable that marks one call's processes


def touch(path: Path, content: bytes = b"") -> Path:
    """Create ``path`` (and its folders) holding ``content``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def write(path: Path, text: str) -> Path:
    return touch(path, text.encode())


# ------------------------------------------------------------------ subprocesses

def run(command: Any, timeout: float | None = None, *, input: Any = None, capture_output: bool = False,
        check: bool = False, grace: float = GRACE_S, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` that kills every process the command started when it returns or raises.

    Same arguments and result as ``subprocess.run`` (``text``, ``cwd``, ``env``, ``stdin`` ... pass through). On a
    timeout the whole tree is killed and ``subprocess.TimeoutExpired`` is raised with the output so far.
    """
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with process_tree(command, grace=grace, **kwargs) as tree:
        try:
            stdout, stderr = tree.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            kill_tree(tree, grace=grace)
            with contextlib.suppress(subprocess.TimeoutExpired):  # the pipes close once the tree is gone
                stdout, stderr = tree.communicate(timeout=max(grace, 1.0))
                expired.output, expired.stderr = stdout, stderr
            raise
    result = subprocess.CompletedProcess(tree.args, tree.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


@contextlib.contextmanager
def process_tree(command: Any, *, grace: float = GRACE_S, env: dict | None = None,
                 **kwargs: Any) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen`` in a new session, as a context manager: on leaving the block, however it is left, every
    process the command started is killed (see the module's text), and the command is waited for."""
    if os.name != "posix":
        kwargs.setdefault("creationflags", getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
    elif kwargs.pop("start_new_session", True) is not True or kwargs.get("process_group") is not None:
        raise ValueError("process_tree starts the command in a new session of its own")
    else:
        kwargs["start_new_session"] = True
    mark = MARK_PREFIX + uuid.uuid4().hex
    env = dict(os.environ if env is None else env)
    env[mark] = "1"
    with subprocess.Popen(command, env=env, **kwargs) as proc:
        proc.tree_mark = mark  # type: ignore[attr-defined]  # read by kill_tree
        try:
            yield proc
        finally:
            kill_tree(proc, grace=grace)


def kill_tree(proc: subprocess.Popen, grace: float = GRACE_S) -> None:
    """Kill ``proc`` and every process it started: SIGTERM, then SIGKILL to what is left after ``grace`` seconds;
    ``proc`` is reaped. A ``proc`` not started by :func:`process_tree` loses only its descendants by parent link (its
    process group may be the caller's own). A Ctrl-C meanwhile is raised once the tree is gone."""
    if os.name != "posix":
        proc.kill()
        proc.wait()
        return
    with _ctrl_c_deferred():
        if (PROC / "self" / "stat").is_file():
            _kill_tree(proc, getattr(proc, "tree_mark", None), grace)
        else:
            _kill_group(proc, grace)


def _kill_tree(proc: subprocess.Popen, mark: str | None, grace: float) -> None:
    # Freeze first, so that nothing forks, or exits and orphans its children, between the search and the signals.
    stopped: dict[int, int] = {}
    for _ in range(100):
        new = {pid: start for pid, start in _tree(proc, mark).items() if stopped.get(pid) != start}
        if not new:
            break
        for pid, start in new.items():
            _signal(pid, start, signal.SIGSTOP)
        stopped.update(new)
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for pid, start in stopped.items():
            _signal(pid, start, sig)
    started = time.monotonic()
    while True:
        proc.poll()  # reap the command itself: a zombie holds nothing but its pid
        left = {pid: start for pid, start in {**stopped, **_tree(proc, mark)}.items() if _alive(pid, start)}
        waited = time.monotonic() - started
        if not left or waited > grace + 30:  # a process stuck in the kernel ignores even SIGKILL: give up on it
            break
        if waited >= grace:
            for pid, start in left.items():
                stopped[pid] = start
                _signal(pid, start, signal.SIGKILL)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold a SIGINT back until the block ends (a cleanup cut short would leave processes stopped), then raise it."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def _kill_group(proc: subprocess.Popen, grace: float) -> None:
    """Without ``/proc``: the command's process group (its own only when :func:`process_tree` started it)."""
    own_group = getattr(proc, "tree_mark", None) is not None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if own_group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            if own_group:
                time.sleep(0.05)  # the command is gone; give its group a moment before the SIGKILL that follows
            else:
                return


def _stat(pid: int | str) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, process group, session, start time) of ``pid``, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": the name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def _alive(pid: int, start: int | None) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX" and (start is None or stat[4] == start)


def _marked(pid: int, mark: str) -> bool:
    """Whether the environment ``pid`` started with holds the variable ``mark``."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return (b"\0" + environ).find(b"\0" + mark.encode() + b"=") >= 0


def _tree(proc: subprocess.Popen, mark: str | None) -> dict[int, int]:
    """pid -> start time of every live process ``proc`` started: ``proc`` itself while not reaped; when it leads its
    own session, that session's and group's members; the processes whose environment carries ``mark``; and every
    descendant of these by parent link. Never this process or its ancestors."""
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if stat is not None and stat[0] not in "ZX":
                table[int(entry.name)] = stat
    mine, pid = set(), os.getpid()
    while pid > 0 and pid not in mine:
        mine.add(pid)
        stat = table.get(pid) or _stat(pid)
        pid = stat[1] if stat else 0
    seeds = set()
    if proc.returncode is None and proc.pid in table:  # not reaped: the pid is still proc's
        seeds.add(proc.pid)
    leader = proc.pid
    if mark is not None and (proc.returncode is None or leader not in table):  # else proc's pid was reused
        seeds.update(p for p, (_, _, group, session, _) in table.items() if leader in (group, session))
    if mark is not None:
        seeds.update(p for p in table if p not in mine and _marked(p, mark))
    children: dict[int, list[int]] = {}
    for p, stat in table.items():
        children.setdefault(stat[1], []).append(p)
    found, todo = set(), list(seeds)
    while todo:
        p = todo.pop()
        if p in found or p in mine:
            continue
        found.add(p)
        todo.extend(children.get(p, ()))
    return {p: table[p][4] for p in found}


def _signal(pid: int, start: int, sig: int) -> None:
    """Send ``sig`` to ``pid`` if it is still the process that started at ``start`` (pids are reused)."""
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# CI's smoke plan (tests/conftest.py, two notebooks at a time): every run on SYSU-MM01, RegDB and HITSZ-VCM, and STAR
# with its baseline on BUPTCampus (the skeleton path there). The suite's 15 minutes leave no room for every paper on
# every benchmark; `python -m vireid_lib.reproduce --smoke` runs them all, and tests/data/test_llcm.py and
# test_bupt.py train AGW and MITML on the LLCM and BUPTCampus twins in-process, through the runner.
CI_FULL_DATASETS = ("sysu", "regdb", "vcm")
CI_EXTRA_RUNS = ("star_bupt",)


def ci_plan(**kwargs: Any) -> list:
    """The planned runs of CI's smoke plan (``reproduce.plan``'s keywords pass through)."""
    from vireid_lib import reproduce

    return [run for run in reproduce.plan({}, smoke=True, **kwargs)
            if run.dataset in CI_FULL_DATASETS or run.name in CI_EXTRA_RUNS]


def ci_run_names() -> list[str]:
    return [run.name for run in ci_plan()]
