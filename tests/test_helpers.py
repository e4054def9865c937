"""tests/helpers.py's subprocess helpers leave nothing running: not the command, not what it started in sessions of its
own (as jupyter_client starts kernels), not what outlived its parent; however the call ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import process_tree, run

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes through /proc (Linux)")

# Writes its pid to argv[1] and sleeps; with "stubborn" it ignores SIGTERM (only SIGKILL stops it).
SLEEPER = """
import os, signal, sys, time
if "stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
"""
# Starts SLEEPER in a new session (as jupyter_client starts a kernel), waits for its pid, writes its own, says "ready",
# then sleeps, or exits at once with "exit" (the sleeper is orphaned), or starts a middle process that starts the
# sleeper and exits with "daemon" (the sleeper is two parents away from any process of the tree).
PARENT = """
import os, subprocess, sys, time
folder, mode = sys.argv[1], sys.argv[2]
sleeper = [sys.executable, "-c", sys.argv[3], os.path.join(folder, "grandchild"), *sys.argv[4:]]
if mode == "daemon":
    middle = "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=subprocess.DEVNULL)"
    subprocess.run([sys.executable, "-c", middle, *sleeper], check=True)
else:
    subprocess.Popen(sleeper, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not os.path.exists(os.path.join(folder, "grandchild")):
    time.sleep(0.01)
with open(os.path.join(folder, "child.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(folder, "child.tmp"), os.path.join(folder, "child"))
print("ready", flush=True)
if mode == "sleep":
    time.sleep(300)
"""


def parent(folder: Path, mode: str = "sleep", *flags: str) -> list[str]:
    return [sys.executable, "-c", PARENT, str(folder), mode, SLEEPER, *flags]


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text[text.rindex(")") + 2:].split()[0] not in "ZX"


def pids(folder: Path, timeout: float = 60) -> dict[str, int]:
    """The child's and grandchild's pids, once both wrote them."""
    deadline = time.monotonic() + timeout
    while not (folder / "child").is_file():
        assert time.monotonic() < deadline, "the child never wrote its pid"
        time.sleep(0.02)
    return {name: int((folder / name).read_text()) for name in ("child", "grandchild")}


def test_a_timeout_kills_the_child_and_its_grandchild_in_a_session_of_its_own(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired) as expired:
            run(parent(tmp_path), timeout=6, capture_output=True, text=True)
        assert expired.value.output == "ready\n"  # the output so far, as subprocess.run gives it
        tree = pids(tmp_path, timeout=0)
        assert tree["grandchild"] != tree["child"] and os.getsid(bystander.pid) == os.getsid(0)
        assert not any(running(pid) for pid in tree.values()), tree
        assert running(bystander.pid)  # only the tree: a process this test started beside it is left alone
    finally:
        bystander.kill()
        bystander.wait()


def test_a_grandchild_whose_parent_already_exited_is_killed_when_the_run_returns(tmp_path: Path) -> None:
    done = run(parent(tmp_path, "exit"), timeout=60, capture_output=True, text=True, check=True)
    assert (done.returncode, done.stdout) == (0, "ready\n")
    assert not running(pids(tmp_path)["grandchild"])


def test_a_daemon_two_parents_away_is_killed_too(tmp_path: Path) -> None:
    with process_tree(parent(tmp_path, "daemon"), stdout=subprocess.DEVNULL) as proc:
        tree = pids(tmp_path)
        assert running(tree["grandchild"]) and os.getsid(tree["grandchild"]) != proc.pid
        proc.wait(timeout=60)  # the child exits; the sleeper's parent exited before it
        assert running(tree["grandchild"])
    assert not running(tree["grandchild"])


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_leaving_the_block_by_an_error_or_ctrl_c_kills_the_tree_even_what_ignores_sigterm(tmp_path: Path,
                                                                                        error: type) -> None:
    started = time.monotonic()
    with pytest.raises(error):
        with process_tree(parent(tmp_path, "sleep", "stubborn"), stdout=subprocess.DEVNULL, grace=0.5) as proc:
            tree = pids(tmp_path)
            assert all(running(pid) for pid in tree.values())
            raise error("the test failed here")
    assert proc.returncode is not None and not any(running(pid) for pid in tree.values())
    assert time.monotonic() - started < 30  # SIGKILL after the grace, not the sleeper's 300 s


def test_run_gives_what_subprocess_run_gives() -> None:
    code = "import sys; print(sys.stdin.read().upper()); sys.stderr.write('note'); sys.exit(3)"
    done = run([sys.executable, "-c", code], input="abc", capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "ABC\n", "note")
    with pytest.raises(subprocess.CalledProcessError):
        run([sys.executable, "-c", code], input="", capture_output=True, check=True, timeout=60)
    assert run([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL).stdout is None
