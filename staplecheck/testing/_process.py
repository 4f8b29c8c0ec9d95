"""What the helpers that run an external server process share: a free port, proof
that the process itself listens on it, and a stop that cannot hit another process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = [
    "free_port",
    "owns_listener",
    "port_accepts",
    "read_log",
    "terminate",
    "wait_until_listening",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind port 0, read it, release it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_listening(
    process: subprocess.Popen[bytes], host: str, port: int, *, timeout: float
) -> bool:
    """Whether ``process`` itself listens on ``port`` within ``timeout`` seconds.

    A TCP connect alone is no proof: when someone else took the port first, that other
    listener answers (and nginx keeps retrying bind() for seconds meanwhile). Where
    ``/proc`` exists, the listening socket must be one of the process's own.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if owns_listener(process.pid, port) and port_accepts(port, host):
            return True
        time.sleep(0.01)
    return False


def owns_listener(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (read from
    ``/proc``; where there is none, the TCP connect has to do)."""
    if not Path("/proc/net/tcp").exists():
        return True
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in (line.split() for line in lines):
            # local_address is ADDRESS:PORT in hex; state 0A is LISTEN.
            if len(fields) > 9 and fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return True
    return False


def terminate(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL: only this process, by its id."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=timeout)


def read_log(path: Path) -> str:
    """A log file's text, or "" when it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
