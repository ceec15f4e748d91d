"""Temporary files written beside their destination, then renamed into place.

Their names carry the writing process's id (``.NAME.PID.RANDOM.tmp[.ext]``), so a later run can remove
the ones left by a process that was killed (:func:`remove_stale`) without touching those of a process
still writing (two trainings may share a dataset's cache). They are created with the usual permissions
(0666 less the umask), not mkstemp's 0600, since they become the final file.
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_STALE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def temp_sibling(path: str | Path, ext: str = "") -> Path:
    """A new, empty file beside ``path`` to write and then ``os.replace`` onto it. ``ext`` keeps a suffix
    that a writer insists on (``np.save`` appends .npy to any other name)."""
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(folder: str | Path) -> list[Path]:
    """Remove temporary files in ``folder`` whose writing process is gone; returns what was removed."""
    removed = []
    try:
        candidates = list(Path(folder).glob(".*.tmp*"))
    except OSError:
        return removed
    for p in candidates:
        m = _STALE.match(p.name)
        if m and not _alive(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed
