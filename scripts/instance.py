"""One local stack per folder: a second `python main.py` (or one whose ports are taken)
stops at once with one line saying what runs, its pid and the port, instead of starting
children that cannot bind (and restart forever) or a second consumer on the same queue."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from pathlib import Path


class AlreadyRunning(Exception):
    """Another stack holds this folder, or a port the stack needs is in use."""


class InstanceLock:
    """An exclusive `flock` on `path` for the life of the process (the kernel drops it when
    the process dies: no stale lock after a crash), naming its holder for the next one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, ports: dict[str, int]) -> InstanceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise AlreadyRunning(_describe_holder(holder, self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), **ports}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def _describe_holder(holder: dict, folder: Path) -> str:
    ports = ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in holder.items()
                      if name != "pid")
    pid = holder.get("pid", "unknown")
    return (f"a local stack is already running in {folder} (pid {pid}"
            f"{', ' + ports if ports else ''}); stop it first (kill {pid})")


def check_ports_free(ports: dict[str, int]) -> None:
    """Raise AlreadyRunning naming the first port something already listens on."""
    for name, port in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise AlreadyRunning(
                    f"port {port} ({name}) is already in use by {_who_listens(port)}; stop "
                    f"it or pass --{name}-port") from None


def _who_listens(port: int) -> str:
    """`pid N (command)` of the process listening on `port`, from /proc (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                        errors="replace").strip()
                    return f"pid {entry.name} ({command[:80]})"
        except OSError:
            continue
    return "another process (pid not visible to this user)"
