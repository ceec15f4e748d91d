"""One writer per run directory.

Two processes training into one folder (two ``morec train --out X``, or ``--resume X`` while X still
trains) would interleave their checkpoints and results, and each would report the other's numbers.
A writer therefore holds an OS file lock (``filelock``, released by the kernel when the process dies)
on ``.NAME.lock`` beside the run folder ``NAME`` for as long as it writes; beside, not inside, so that
``--overwrite`` can move the old folder away without moving the lock. ``.NAME.lock.json`` says who
holds it (pid, command, host, start time): a second writer is refused at once with that, and a
record left by a killed writer (the lock itself is free again) is taken over with a note.

Locks are re-entrant within a process: the command line takes the lock before it looks at the
folder, and the training loop, which takes it again for every other caller, finds it held.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .config import ConfigError
from .tempfiles import _alive, temp_sibling


class RunDirBusy(ConfigError):
    """Another live process writes this run directory."""


_HELD: dict[Path, list] = {}  # resolved run directory -> [lock, depth]


def lock_paths(run_dir: str | Path) -> tuple[Path, Path]:
    """(the lock file, the owner record) of a run directory."""
    run = Path(os.path.abspath(run_dir))
    return run.parent / f".{run.name}.lock", run.parent / f".{run.name}.lock.json"


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith(("__main__.py", "/morec")) or Path(argv[0]).name == "morec":
        argv[0] = "morec"
    text = shlex.join(argv)
    return text if len(text) <= 300 else text[:297] + "..."


def read_owner(record: Path) -> dict | None:
    try:
        owner = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def describe(owner: dict | None) -> str:
    if not owner:
        return "another process (it has not said who it is yet)"
    host = "" if owner.get("host") == socket.gethostname() else f" on {owner.get('host')}"
    return f"pid {owner.get('pid')}{host} (`{owner.get('command')}`, since {owner.get('started')})"


def _write_owner(record: Path) -> None:
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = temp_sibling(record)
    try:
        tmp.write_text(json.dumps(owner), encoding="utf-8")
        os.replace(tmp, record)
    finally:
        tmp.unlink(missing_ok=True)


def _acquire(run: Path, what: str):
    from filelock import FileLock, Timeout

    lock_file, record = lock_paths(run)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = read_owner(record)
        for _ in range(20):  # a holder that has just taken the lock writes its record a moment later
            if owner:
                break
            time.sleep(0.05)
            owner = read_owner(record)
        raise RunDirBusy(f"{run} is being written by {describe(owner)}; one process at a time may {what} it. "
                         "Wait for that process to finish (or stop it), or choose another --out") from None
    stale = read_owner(record)
    if stale:
        pid = stale.get("pid")
        ended = stale.get("host") == socket.gethostname() and isinstance(pid, int) and pid > 0 and not _alive(pid)
        gone = "has ended" if ended else "no longer holds the lock"
        print(f"morec: note: {run}: taking over the lock left by {describe(stale)}, which {gone}", file=sys.stderr)
    _write_owner(record)
    return lock


@contextmanager
def run_lock(run_dir: str | Path, what: str = "write") -> Iterator[None]:
    """Hold the run directory's writer lock for the ``with`` block; :class:`RunDirBusy` (a one-line error
    naming the holder) when another live process holds it. ``what`` is the verb in that message."""
    run = Path(os.path.abspath(run_dir))
    held = _HELD.get(run)
    if held is not None:
        held[1] += 1
    else:
        _HELD[run] = [_acquire(run, what), 1]
    try:
        yield
    finally:
        entry = _HELD[run]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[run]
            lock_paths(run)[1].unlink(missing_ok=True)  # a clean exit leaves no owner record behind
            entry[0].release()
