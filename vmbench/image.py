"""Everything one boot needs, built (or found in the cache) in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmbench import initramfs, kernel, rootfs


@dataclass(frozen=True)
class Image:
    vmlinux: Path
    initrd: Path
    root: Path  # ext4 image, mounted read-only
    modules: Path  # lib/modules, shared over 9p
    release: str  # kernel release, e.g. 6.1.0-56-amd64


def build(repo: Path, log=print) -> Image:
    """Build what is missing; a cached build returns in well under a second (one apt-cache call)."""
    kern = kernel.kernel(log=log)
    return Image(
        vmlinux=kern.vmlinux,
        initrd=initramfs.initramfs(kern, log=log),
        root=rootfs.rootfs(Path(repo), log=log),
        modules=kern.modules,
        release=kern.release,
    )
