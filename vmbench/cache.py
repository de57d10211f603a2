"""Where the bench keeps what it builds, keyed on what went into it.

Each stage (kernel, root filesystem, initramfs) lives in its own directory named after a hash of
its inputs, and is only visible once complete (built in a temporary directory, then renamed), so an
interrupted build never leaves a half stage that a later run would trust.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """VMBENCH_CACHE, else ~/.cache/handset-vmbench (outside the worktree: CI clones share it)."""
    env = os.environ.get("VMBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "handset-vmbench"


def key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def source_of(*files: str | Path) -> bytes:
    """The bytes of the files that build a stage, so editing the recipe rebuilds the stage."""
    return b"".join(Path(f).read_bytes() for f in files)


def stage(
    name: str,
    stage_key: str,
    build: Callable[[Path], None],
    log=print,
    root: Path | None = None,
) -> Path:
    """Return the finished directory of stage `name`, calling `build(tmpdir)` if it is missing.
    Concurrent runs (several worktrees' `make test`) wait for one build instead of racing.
    `root` is the cache directory (default: `cache_root()`)."""
    root = root or cache_root()
    final = root / f"{name}-{stage_key}"
    if final.is_dir():
        os.utime(final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():  # built by whoever held the lock before us
            os.utime(final)
            return final
        for stale in root.glob(f".{name}-*.tmp-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{name}-{stage_key}.tmp-{os.getpid()}"
        tmp.mkdir()
        log(f"vmbench: building {name} ({stage_key}) in {tmp}")
        try:
            build(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(final)
        _drop_older(root, name, keep=final)
    return final


def _drop_older(root: Path, name: str, keep: Path, count: int = 4) -> None:
    """Old builds are dead weight (hundreds of MB); keep the `count` most recently used, so the
    worktrees of several branches (different pins) do not rebuild each other's stages."""
    builds = sorted(
        (p for p in root.glob(f"{name}-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in builds[count - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
