"""The base stage: a Debian bookworm arm64 tree with kernel, initramfs, boot firmware, systemd,
sshd and the project's Python dependencies in /opt/handset, and no handset code yet.

It is the slow part of a build (mmdebstrap through qemu-user, the initramfs, compiling two
sdists), so it is cached like the VM bench's stages: a directory named after a hash of its inputs
(the package lists, the image's pins in constraints.txt, its dependencies in pyproject.toml
and these recipes).
The handset itself goes on top in assemble.py, so editing the code does not rebuild this.
"""

from __future__ import annotations

import os
from pathlib import Path

from image import progress, wheels
from vmbench import cache

HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main non-free-firmware",
    "deb http://deb.debian.org/debian bookworm-updates main non-free-firmware",
    "deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware",
)
PACKAGES = HERE / "packages.txt"
BUILD_PACKAGES = HERE / "build-packages.txt"
INITRAMFS_MODULES = HERE / "initramfs-modules.txt"
CUSTOMIZE = HERE / "customize-base.sh"
# Documentation is not needed on a handset; the copyright files stay.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
# update-initramfs would run (twice, with MODULES=most: 10+ min each under emulation) from
# package triggers; it runs once, at the end, with a short module list (customize-base.sh).
DEFER_INITRAMFS = (
    'chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs'
    ' && printf "#!/bin/sh\\necho update-initramfs: deferred to the end of the build\\n"'
    ' > "$1"/usr/sbin/update-initramfs && chmod 755 "$1"/usr/sbin/update-initramfs'
)
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def package_list(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def cache_dir() -> Path:
    """HANDSET_IMAGE_CACHE, else ~/.cache/handset-image (outside the worktree: clones share it)."""
    env = os.environ.get("HANDSET_IMAGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "handset-image"


def build_key(repo: Path) -> str:
    return cache.key(
        "\n".join(wheels.image_requirements(repo)),
        "\n".join(wheels.image_pins(repo)),
        "\n".join(MIRRORS),
        cache.source_of(
            __file__, wheels.__file__, PACKAGES, BUILD_PACKAGES, INITRAMFS_MODULES, CUSTOMIZE
        ),
    )


def base(repo: Path, logs: Path) -> Path:
    """The cached base stage's directory (tree/, freeze.txt), built if missing."""
    stage_key = build_key(repo)
    final = cache_dir() / f"pi-base-{stage_key}"
    if final.is_dir():
        progress.log(f"base system: cached ({final})")
        os.utime(final)
        return final
    return cache.stage(
        "pi-base", stage_key, lambda out: _build(repo, out, logs), progress.log, cache_dir()
    )


def _build(repo: Path, out: Path, logs: Path) -> None:
    if os.geteuid() != 0:
        raise progress.PhaseFailed("building the base system needs root (mmdebstrap, chroot)")
    with progress.phase("download arm64 wheels and sdists (pinned by constraints.txt)"):
        wheels.download(repo, out / "wheels")
    tree = out / "tree"
    with progress.phase(f"mmdebstrap {SUITE} arm64 (qemu-user; log in {logs}/mmdebstrap.log)"):
        argv = [
            "mmdebstrap",
            "--mode=root",
            "--architectures=arm64",
            "--variant=minbase",
            f"--include={','.join(package_list(PACKAGES) + package_list(BUILD_PACKAGES))}",
            *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
            f"--essential-hook={DEFER_INITRAMFS}",
            f'--customize-hook={CUSTOMIZE} "$1" {out / "wheels"} {INITRAMFS_MODULES}'
            f" {BUILD_PACKAGES}",
            SUITE,
            str(tree),
            *MIRRORS,
        ]
        # env -i: the host's PIP_*, proxies and locale must not leak into the image's build.
        progress.run_logged(
            ["env", "-i", *(f"{k}={v}" for k, v in CLEAN_ENV.items()), *argv],
            logs / "mmdebstrap.log",
            show=("I: ", "E: ", "customize: "),
        )
    (out / "freeze.txt").write_bytes((tree / "opt/handset/freeze.txt").read_bytes())
