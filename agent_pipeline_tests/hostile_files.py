"""Put something other than a regular file where a state file belongs, and call readers with a deadline.

Tests run as root, so permissions stop nothing; what breaks a reader is a FIFO (an ordinary ``open`` for reading
waits for a writer forever), a socket, a device, a directory or a symbolic link. ``within`` runs a call in a
thread: if it has not returned by the deadline, the FIFOs are opened for writing and closed (which releases a
blocked reader) and the test fails, instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

KINDS = ("fifo", "socket", "directory", "symlink", "dangling_symlink", "device")


def plant(kind: str, path: Path, target: Path | None = None) -> Path:
    """Replace ``path`` by a ``kind`` of non-regular file; returns ``path``."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))  # the socket file stays after close
    elif kind == "directory":
        path.mkdir()
        (path / "content").write_text("x")  # not empty, so nothing can rename over it
    elif kind == "symlink":
        assert target is not None and target.exists()
        path.symlink_to(target)
    elif kind == "dangling_symlink":
        path.symlink_to(path.with_name(path.name + ".nowhere"))
    elif kind == "device":
        try:  # /dev/zero: endless data for a reader that does not bound what it reads
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        except (PermissionError, OSError) as exc:
            pytest.skip(f"cannot create a device node here: {exc}")
    else:
        raise ValueError(kind)
    return path


def _release(fifos: list[Path]) -> None:
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def within(seconds: float, call: Callable[[], Any], *, fifos: list[Path] = ()) -> Any:
    """``call()``'s result, or a test failure if it takes longer than ``seconds`` (blocked on a FIFO)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the test below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for _ in range(50):
            _release(list(fifos))
            thread.join(0.1)
            if not thread.is_alive():
                break
        pytest.fail(f"the call did not return within {seconds} s (blocked on a special file)")
    if "error" in result:
        raise result["error"]
    return result["value"]
