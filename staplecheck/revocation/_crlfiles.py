"""Static CRL files and directories, for sites that cannot reach their CA.

Files are read when asked about and re-read when their size or modification time
changes, so a cron job that drops a fresh CRL in place is picked up on the next
connection. Every file is bounded (:data:`~._crl.MAX_CRL_BYTES`), and so is the
number read from one directory (:data:`MAX_FILES`). Nothing here judges a CRL.
"""

from __future__ import annotations

import os
import stat
import threading

from ._crl import MAX_CRL_BYTES

__all__ = ["MAX_FILES", "CRLFiles"]

MAX_FILES = 256
"""Files read from the static CRL paths altogether, in sorted order per directory."""


class CRLFiles:
    """The CRLs under some paths (files, or directories of files), as bytes."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[tuple[int, int], bytes]] = {}
        self._lock = threading.Lock()

    def load(self, paths: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
        """``(path, bytes)`` for every readable file under ``paths``, and ``(path,
        reason)`` for every one that could not be used."""
        found: list[tuple[str, bytes]] = []
        problems: list[tuple[str, str]] = []
        for path in _files(paths, problems):
            try:
                info = os.stat(path)
                if not stat.S_ISREG(info.st_mode):
                    problems.append((path, "not a regular file"))
                    continue
                if info.st_size > MAX_CRL_BYTES:
                    problems.append((path, f"larger than {MAX_CRL_BYTES} bytes"))
                    continue
                signature = (info.st_size, info.st_mtime_ns)
                with self._lock:
                    known = self._read.get(path)
                if known is not None and known[0] == signature:
                    found.append((path, known[1]))
                    continue
                with open(path, "rb") as handle:
                    data = handle.read(MAX_CRL_BYTES + 1)
                if len(data) > MAX_CRL_BYTES:
                    problems.append((path, f"larger than {MAX_CRL_BYTES} bytes"))
                    continue
                with self._lock:
                    self._read[path] = (signature, data)
                found.append((path, data))
            except OSError as error:
                problems.append((path, error.strerror or type(error).__name__))
        return found, problems


def _files(paths: tuple[str, ...], problems: list[tuple[str, str]]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as error:
                problems.append((path, error.strerror or type(error).__name__))
                continue
            files.extend(os.path.join(path, name) for name in names if not name.startswith("."))
        else:
            files.append(path)
    if len(files) > MAX_FILES:
        problems.append((files[MAX_FILES], f"over the limit of {MAX_FILES} CRL files"))
    return files[:MAX_FILES]
