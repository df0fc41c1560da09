"""Open small state files without blocking, without following links, and only if they are regular files.

Another process (or a hostile agent with write access to ``$AGENT_PIPELINE_HOME``) can put anything where a state
file should be: a FIFO (a plain ``open`` for reading waits for a writer forever), a socket, a device, a directory,
or a symbolic link to an older copy. Every reader of the pipeline's own files therefore opens them with
``O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC``, checks with ``fstat`` that it got a regular file, and reads a bounded
number of bytes. Anything else raises ``NotRegularFile`` (an ``OSError``) whose message names what was found.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


class NotRegularFile(OSError):
    """Something other than a regular file is where a regular file should be."""


class FileTooLarge(ValueError):
    """A state file is larger than any the pipeline writes."""


def describe(mode: int) -> str:
    """'a FIFO (named pipe)', 'a directory', ... for a ``st_mode``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str | os.PathLike[str], st: os.stat_result) -> None:
    """Raise ``NotRegularFile`` unless ``st`` (from ``lstat`` or ``fstat``) is a regular file."""
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{path} is {describe(st.st_mode)}, not a regular file")


def _what_is(path: str | os.PathLike[str]) -> str:
    try:
        return describe(os.lstat(path).st_mode)
    except OSError:
        return "not a regular file"


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o644, *,
                 follow_links: bool = False) -> int:
    """A descriptor of the regular file at ``path`` (``flags`` may add O_CREAT, O_APPEND, O_WRONLY, ...).

    Never blocks and, unless ``follow_links`` (for files a person may keep elsewhere, such as ``config.toml``),
    never follows a symbolic link in the last component. The caller closes the descriptor.
    """
    safe = _SAFE & ~os.O_NOFOLLOW if follow_links else _SAFE
    try:
        fd = os.open(path, flags | safe, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
            raise NotRegularFile(f"{path} is {_what_is(path)}, not a regular file") from None
        raise
    try:
        check_regular(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int, *, follow_links: bool = False) -> bytes:
    """The whole content of a small regular file; ``FileTooLarge`` beyond ``limit`` bytes."""
    fd = open_regular(path, follow_links=follow_links)
    try:
        data = _read_upto(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLarge(f"{path} is larger than {limit} bytes")
    return data


def read_tail(path: str | os.PathLike[str], limit: int) -> tuple[bytes, bool]:
    """The last ``limit`` bytes of a regular file and whether anything before them was left out."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        os.lseek(fd, start, os.SEEK_SET)
        return _read_upto(fd, limit), start > 0
    finally:
        os.close(fd)


def _read_upto(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(65_536, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def replace_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a fresh temporary file beside ``path`` and rename it over ``path``.

    The temporary name is random and created exclusively (``tempfile.mkstemp``), so a link planted at a
    predictable name cannot redirect the write; the rename replaces whatever is at ``path`` (a link, a FIFO), never
    writing through it. A reader sees the old or the new content, never half of one.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: some file systems refuse to fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
