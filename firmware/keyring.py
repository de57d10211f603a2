"""The keyring file on disk: read it, and replace it atomically (mode 0600).

The text format and its parser live in `vomp.identity`; this edge module does the file I/O.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from vomp.identity import KeyringEntry, format_keyring, parse_keyring


def load_keyring(path: str | os.PathLike[str]) -> list[KeyringEntry]:
    """Read a keyring file; a malformed line raises KeyringError naming file, line and fix."""
    path = Path(path)
    return parse_keyring(path.read_text(encoding="utf-8"), str(path))


def save_keyring(path: str | os.PathLike[str], entries: list[KeyringEntry]) -> None:
    """Write atomically: temp file in the same dir, fsync, rename, fsync the dir; mode 0600.

    A crash at any point leaves either the old keyring or the new one, never a torn file.
    """
    path = Path(path)
    data = format_keyring(entries).encode("utf-8")
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
