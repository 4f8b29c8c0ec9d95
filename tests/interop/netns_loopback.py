"""Run a server that binds every interface so that it is reachable on 127.0.0.1 only.

Usage: ``python3 netns_loopback.py PORT -- COMMAND [ARG...]``

Some servers cannot be told which address to bind: ``gnutls-serv`` listens on
``0.0.0.0`` and ``::``. This script (standard library only, Linux only):

1. binds ``127.0.0.1:PORT`` in the current network namespace (not yet listening);
2. moves itself into a new, private network namespace (``unshare(CLONE_NEWNET)``, with
   a user namespace too when not root) whose only interface is its own loopback, and
   brings that loopback up;
3. starts COMMAND there: whatever it binds, the only address it can be reached on is
   that private loopback, which nothing outside the namespace can reach;
4. once COMMAND accepts TCP connections on the private ``127.0.0.1:PORT``, listens on
   the socket from step 1 (still in the original namespace) and copies bytes between
   each connection there and a new connection to COMMAND.

TLS passes through untouched: clients handshake with COMMAND itself. SIGTERM (or
SIGINT) stops COMMAND, then this script; COMMAND also gets SIGKILL if this script
dies (``PR_SET_PDEATHSIG``). Exit codes: COMMAND's when it exits by itself, 97 when
the port is taken ("Address already in use" is printed), 98 when no network
namespace can be made, 99 when COMMAND does not come up.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PR_SET_PDEATHSIG = 1
START_TIMEOUT = 10.0
LOOPBACK = "127.0.0.1"

_libc = ctypes.CDLL(None, use_errno=True)


def _say(message: str) -> None:
    print(f"netns_loopback: {message}", file=sys.stderr, flush=True)


def _private_network() -> None:
    """Move this (single-threaded) process into a new network namespace, loopback up."""
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWNET | CLONE_NEWUSER
    if _libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWNET) failed: {os.strerror(code)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        current = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", current | IFF_UP))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _relay(client: socket.socket, port: int) -> None:
    with client:
        try:
            upstream = socket.create_connection((LOOPBACK, port), timeout=5)
        except OSError as error:
            _say(f"cannot reach the server inside the namespace: {error}")
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        _say("usage: netns_loopback.py PORT -- COMMAND [ARG...]")
        return 2
    port, command = int(argv[0]), argv[2:]

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((LOOPBACK, port))
    except OSError as error:
        _say(f"cannot bind {LOOPBACK}:{port}: {error}")  # "[Errno 98] Address already in use"
        return 97 if error.errno == errno.EADDRINUSE else 2
    try:
        _private_network()
    except OSError as error:
        _say(f"cannot make a private network namespace: {error}")
        return 98

    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def stop(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    deadline = time.monotonic() + START_TIMEOUT
    while not _accepts(port):
        if child.poll() is not None:
            _say(f"{command[0]} exited with status {child.returncode} before it listened")
            return child.returncode or 99
        if time.monotonic() > deadline:
            _say(f"{command[0]} did not listen on port {port} within {START_TIMEOUT} s")
            child.kill()
            child.wait()
            return 99
        time.sleep(0.01)

    def watch() -> None:  # COMMAND gone: so is the relay
        code = child.wait()
        _say(f"{command[0]} exited with status {code}")
        os._exit(code or 1)

    threading.Thread(target=watch, daemon=True).start()
    listener.listen(64)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, port), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
