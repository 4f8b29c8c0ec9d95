"""Adversarial review of the operators' commands (issue 10): each test here failed
before the fix committed with it. Real servers and subprocesses only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _staplecheck(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "staplecheck", *args],
        capture_output=True,
        env=_env(),
        timeout=timeout,
    )


class DrippingServer:
    """Accepts, reads the ClientHello, then announces a 16 KiB handshake record and
    sends it one byte every ``interval`` seconds: each read completes well within any
    per-read timeout, the handshake never does."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def __enter__(self) -> DrippingServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"\x16\x03\x03\x40\x00")
                while not self._stop.wait(self.interval):
                    conn.sendall(b"\x02")
            except OSError:
                return


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    with DrippingServer() as server:
        yield server


def test_a_dripping_server_cannot_hold_scan_past_its_timeout(dripping: DrippingServer) -> None:
    started = time.monotonic()
    proc = _staplecheck(
        "scan", "--json", "--timeout", "1", f"127.0.0.1:{dripping.port}", timeout=20
    )
    elapsed = time.monotonic() - started
    assert b"Traceback" not in proc.stderr
    assert elapsed < 8, f"scan took {elapsed:.1f} s with --timeout 1"
    assert proc.returncode == 3, proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["outcome"] == "unreachable"
    assert "timed out" in record["error"]


def test_a_dripping_server_cannot_hold_check_past_its_timeout(dripping: DrippingServer) -> None:
    started = time.monotonic()
    proc = _staplecheck(
        "check", "--timeout", "1", f"https://127.0.0.1:{dripping.port}/", timeout=20
    )
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"check took {elapsed:.1f} s with --timeout 1"
    assert b"Traceback" not in proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert b"timed out" in proc.stderr
