"""Atomic file writes that honour the umask, and clean-up of what a killed writer left.

Every output is written to a hidden `.<name>.<random>.part` file in the same folder and
renamed into place, so a reader never sees a partial file. `tempfile` creates its files
mode 0600 whatever the umask; the part file is given the mode a plain `open` would have
given (0666 minus the umask) before it is renamed, so colleagues sharing a results folder
can read them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import StageError

PART_SUFFIX = ".part"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_parts(folder: Path) -> int:
    """Remove the `.part` files a killed writer left under `folder`; returns how many."""
    removed = 0
    for part in Path(folder).rglob(f".*{PART_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed += 1
    return removed


def remove_tree(folder: Path, root: Path) -> None:
    """Delete `folder`, then its parents up to `root` (included) while they are empty.

    For work and staging folders once their contents are committed; never goes above `root`."""
    folder, root = Path(folder), Path(root)
    if folder != root and root not in folder.parents:
        raise ValueError(f"{folder} is not inside {root}")
    shutil.rmtree(folder, ignore_errors=True)
    if folder == root:
        return
    for parent in folder.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (other work) or already gone
            break
        if parent == root:
            break


def os_error(exc: OSError, resumable: bool = False) -> StageError:
    """The one-line message of a failed file operation (disk full, permissions, ...)."""
    where = exc.filename or "output"
    if exc.errno == errno.ENOSPC:
        return StageError(f"{where}: disk full (no space left on device); free space and run the stage again"
                          + (": it resumes from the work already done" if resumable else "")
                          + "; the previous outputs are unchanged")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StageError(f"{where}: not writable ({exc.strerror}); choose another output_dir or fix the permissions")
    return StageError(f"{where}: {exc.strerror or exc}")
