"""The keyring file on disk: read it, create it once, replace it atomically (mode 0600).

The text format and its parser live in `vomp.identity`; this edge module does the file I/O, and
guards the one thing a handset cannot get back: its identity. So a keyring is created only when
there is no file at all; a file that exists but holds no identity (empty, blank, comments only,
not UTF-8) stops start-up with the fix instead of being replaced by a new identity; a symbolic
link is refused (an attacker's link could aim our writes elsewhere, and a rename would replace
the link with a file); and a keyring that others can read is made 0600 again with a warning
(the handset keeps working, and the log says the secret may have been read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from vomp.identity import Identity, KeyringEntry, KeyringError, format_keyring, parse_keyring

log = logging.getLogger("handset")

RESTORE_OR_MOVE = (
    "restore the keyring from a backup, or, to start over as a new identity (a new SID: "
    "others will see a new handset), move the file away and start again"
)


def load_keyring(path: str | os.PathLike[str]) -> list[KeyringEntry]:
    """Read a keyring file. Everything wrong with it raises KeyringError naming the file and the
    fix: a malformed line, no identity at all, bytes that are not UTF-8, a symlink."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if path.is_symlink():
            raise KeyringError(
                f"{path} is a symbolic link (to {os.readlink(path)}); fix: put the keyring file "
                f"itself there (mv the target to {path}), so that nobody can redirect it"
            ) from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        _private(handle.fileno(), path)
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyringError(
            f"{path}: not a keyring (byte {exc.start} is not UTF-8 text); fix: {RESTORE_OR_MOVE}"
        ) from exc
    entries = parse_keyring(text, str(path))
    if not entries:
        raise KeyringError(
            f"{path}: holds no identity (it is empty, blank or comments only); "
            f"fix: {RESTORE_OR_MOVE}"
        )
    return entries


def _private(fd: int, path: Path) -> None:
    """Refuse what is not a regular file; make a keyring others can read 0600 again."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise KeyringError(f"{path} is not a regular file; fix: {RESTORE_OR_MOVE}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        try:
            os.fchmod(fd, 0o600)
        except PermissionError as exc:
            raise KeyringError(
                f"{path} is readable by others (mode {mode:04o}) and not ours to change; "
                f"fix: chown it to this user and chmod 600 it"
            ) from exc
        log.warning(
            "%s was readable by others (mode %04o): made it 0600. Anyone who could log in "
            "may have copied this handset's secret key; if that matters, start over as a "
            "new identity",
            path,
            mode,
        )


def save_keyring(
    path: str | os.PathLike[str], entries: list[KeyringEntry], *, create: bool = False
) -> None:
    """Write atomically: temp file in the same dir, fsync, rename, fsync the dir; mode 0600.

    A crash at any point leaves either the old keyring or the new one, never a torn file.
    With `create`, the keyring must not exist yet (a file that appears meanwhile is kept,
    and FileExistsError raised); otherwise it must be a regular file, not a symlink.
    """
    path = Path(path)
    if not create and path.is_symlink():
        raise KeyringError(f"{path} is a symbolic link; fix: put the keyring file itself there")
    data = format_keyring(entries).encode("utf-8")
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if create:
            os.link(tmp, path)  # fails if anything (a file, a symlink) is there by now
            os.unlink(tmp)
        else:
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


def load_or_create(path: Path, number: str | None, name: str | None) -> KeyringEntry:
    """The keyring's first identity, with `number`/`name` when given (None keeps what is
    there). A new identity is made only when there is no file at all."""
    entries = load_keyring(path) if os.path.lexists(path) else []
    entry = entries[0] if entries else KeyringEntry(Identity.generate(), None, "")
    updated = KeyringEntry(
        entry.identity,
        number if number is not None else entry.did,
        name if name is not None else entry.name,
    )
    if not entries:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_keyring(path, [updated], create=True)
    elif updated != entry:
        save_keyring(path, [updated, *entries[1:]])
    return updated
