"""The SD card image: the cached base tree, plus the handset, its units and the card's config,
packed into a FAT boot partition and an ext4 root partition without loop devices.

Layout (as Debian's image-specs): msdos table; `RASPIFIRM` FAT32 from 4 MiB to 512 MiB, mounted
at /boot/firmware; `RASPIROOT` ext4 for the rest, grown to fill the card at the first boot.
A rebuild whose inputs (base stage, handset sources, units, this recipe) are unchanged reuses the
image already in build/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from image import base, progress
from vmbench import cache

HERE = Path(__file__).resolve().parent
OVERLAY = HERE / "rootfs"
FIRSTBOOT = HERE / "firstboot.py"
CARD_CONFIG = HERE / "handset.toml"
PACKAGE_DIRS = ("vomp", "hw", "firmware")  # pyproject.toml's packages
VENV = "/opt/handset"
MIB = 1024 * 1024
FAT_START_MIB = 4
ROOT_START_MIB = 512
ROOT_SPARE_MIB = 256  # free space in the root partition before the first boot grows it
SYSTEMD_INSTALL = "systemd/install"


@dataclass(frozen=True)
class Built:
    image: Path
    compressed: Path | None
    units: tuple[str, ...]  # the handset's units enabled on the image


def version(repo: Path) -> str:
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]


def image_path(repo: Path) -> Path:
    return repo / "build" / f"handset-{version(repo)}-arm64.img"


def _tree_bytes(root: Path) -> bytes:
    """Every file under `root` with its relative path, in a stable order."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" not in path.parts:
            parts.append(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return b"\0".join(parts)


def build_key(repo: Path, base_key: str) -> str:
    sources = [_tree_bytes(repo / name) for name in PACKAGE_DIRS]
    if (repo / "systemd").is_dir():
        sources.append(_tree_bytes(repo / "systemd"))
    return cache.key(
        base_key,
        (repo / "pyproject.toml").read_bytes(),
        *sources,
        _tree_bytes(OVERLAY),
        cache.source_of(__file__, FIRSTBOOT, CARD_CONFIG),
    )


def build(repo: Path, compress: bool = True) -> Built:
    """Build build/handset-VERSION-arm64.img (and .img.zst + .sha256 files if `compress`)."""
    start = time.monotonic()
    repo = repo.resolve()
    logs = repo / "build" / "image-logs"
    with progress.phase("check the host"):
        missing = missing_host_tools()
        if missing:
            raise progress.PhaseFailed(
                f"missing on this machine: {', '.join(missing)}; as root `make image` installs"
                " them (tools/apt-test-packages.txt)"
            )
        enable_binfmt()
    base_dir = base.base(repo, logs)
    img = image_path(repo)
    manifest = img.with_name(img.name + ".json")
    key = build_key(repo, base_dir.name)
    built = _read_manifest(manifest)
    if img.exists() and built.get("inputs") == key:
        progress.log(f"disk image: cached ({img}, inputs unchanged)")
        units = tuple(built["units"])
    else:
        manifest.unlink(missing_ok=True)
        work = repo / "build" / "image-work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            tree, units = _root_tree(repo, base_dir, work)
            freeze = (tree / VENV.lstrip("/") / "freeze.txt").read_text().split()
            _disk_image(tree, work, img)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        manifest.write_text(json.dumps({"inputs": key, "units": units, "python": freeze}, indent=1))
    compressed = _compress(img, key) if compress else None
    progress.log(f"{img} ready after {time.monotonic() - start:.1f} s")
    return Built(img, compressed, units)


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _root_tree(repo: Path, base_dir: Path, work: Path) -> tuple[Path, tuple[str, ...]]:
    tree = work / "tree"
    with progress.phase("copy the base tree"):
        subprocess.run(
            ["cp", "-a", "--reflink=auto", str(base_dir / "tree"), str(tree)], check=True
        )
    with progress.phase("install the handset into /opt/handset (pip in the arm64 chroot)"):
        wheel = _handset_wheel(repo, work)
        (tree / "tmp" / wheel.name).write_bytes(wheel.read_bytes())
        pip = ["chroot", str(tree), f"{VENV}/bin/python", "-m", "pip"]
        quiet = ["-q", "--disable-pip-version-check", "--no-cache-dir"]
        subprocess.run(
            [*pip, "install", *quiet, "--no-index", "--no-deps", f"/tmp/{wheel.name}"], check=True
        )
        subprocess.run([*pip, "check"], check=True, stdout=subprocess.DEVNULL)
        (tree / "tmp" / wheel.name).unlink()
        (tree / "usr/local/bin/handset").symlink_to(f"{VENV}/bin/handset")
    with progress.phase("units, users and first-boot files"):
        subprocess.run(["cp", "-a", f"{OVERLAY}/.", str(tree)], check=True)
        firstboot = tree / "usr/lib/handset-image/firstboot"
        firstboot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIRSTBOOT, firstboot)
        firstboot.chmod(0o755)
        if (repo / SYSTEMD_INSTALL).exists():
            progress.quiet([str(repo / SYSTEMD_INSTALL), str(tree)])
        else:
            progress.log(f"  {SYSTEMD_INSTALL} is not in this tree yet: no handset.service")
        progress.quiet(["systemd-sysusers", f"--root={tree}"])
        units = ["handset-firstboot.service", "handset-boot-report.service"]
        if (tree / "usr/lib/systemd/system/handset.service").exists() or (
            tree / "etc/systemd/system/handset.service"
        ).exists():
            units.append("handset.service")
        subprocess.run(["systemctl", f"--root={tree}", "--quiet", "enable", *units], check=True)
        shutil.copyfile(CARD_CONFIG, tree / "boot/firmware/handset.toml")
    return tree, tuple(units)


def _handset_wheel(repo: Path, work: Path) -> Path:
    """The handset as a wheel, built from a copy of its sources (no build/ or egg-info in repo)."""
    src = work / "src"
    src.mkdir()
    shutil.copy2(repo / "pyproject.toml", src)
    for name in PACKAGE_DIRS:
        shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            str(work / "dist"),
            str(src),
        ],
        check=True,
        env=base.CLEAN_ENV,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    return wheel


def _disk_image(tree: Path, work: Path, img: Path) -> None:
    firmware = tree / "boot" / "firmware"
    fat = work / "firmware.vfat"
    root = work / "root.ext4"
    fat_mib = ROOT_START_MIB - FAT_START_MIB
    with progress.phase(f"boot partition (FAT32, {fat_mib} MiB)"):
        progress.quiet(
            ["mkfs.vfat", "-C", "-F", "32", "-n", "RASPIFIRM", str(fat), str(fat_mib * 1024)]
        )
        entries = sorted(str(p) for p in firmware.iterdir())
        subprocess.run(["mcopy", "-s", "-p", "-m", "-i", str(fat), *entries, "::/"], check=True)
        for entry in firmware.iterdir():  # the partition is mounted over this directory
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        progress.quiet(["fsck.vfat", "-n", str(fat)])
    used_mib = _used_mib(tree)
    root_mib = used_mib + used_mib // 8 + ROOT_SPARE_MIB
    with progress.phase(f"root partition (ext4, {root_mib} MiB for {used_mib} MiB of files)"):
        progress.quiet(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "RASPIROOT",
                "-E",
                "root_owner=0:0",
                "-d",
                str(tree),
                str(root),
                f"{root_mib}M",
            ],
        )
        progress.quiet(["e2fsck", "-fn", str(root)])
    with progress.phase("disk image (msdos table, partitions copied in)"):
        tmp = img.with_name(img.name + ".tmp")
        tmp.unlink(missing_ok=True)
        total_mib = ROOT_START_MIB + root_mib
        subprocess.run(["truncate", "-s", f"{total_mib}M", str(tmp)], check=True)
        table = (
            "label: dos\n"
            f"start={FAT_START_MIB}MiB, size={fat_mib}MiB, type=c, bootable\n"
            f"start={ROOT_START_MIB}MiB, type=83\n"
        )
        subprocess.run(["sfdisk", "--quiet", str(tmp)], input=table.encode(), check=True)
        for part, start_mib in ((fat, FAT_START_MIB), (root, ROOT_START_MIB)):
            subprocess.run(
                [
                    "dd",
                    f"if={part}",
                    f"of={tmp}",
                    "bs=1M",
                    f"seek={start_mib}",
                    "conv=notrunc,sparse",
                    "status=none",
                ],
                check=True,
            )
        tmp.rename(img)


def _used_mib(tree: Path) -> int:
    out = subprocess.run(["du", "-sm", str(tree)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def _compress(img: Path, key: str) -> Path:
    """img.zst and the sha256 files of both, unless they are already there for this build."""
    zst = img.with_name(img.name + ".zst")
    stamp = zst.with_name(zst.name + ".inputs")
    if zst.exists() and stamp.exists() and stamp.read_text().strip() == key:
        progress.log(f"compressed copy: cached ({zst})")
        return zst
    with progress.phase("compressed copy (zstd) and sha256 sums"):
        stamp.unlink(missing_ok=True)
        subprocess.run(["zstd", "-q", "-f", "-T0", "-10", str(img), "-o", str(zst)], check=True)
        for path in (img, zst):
            out = subprocess.run(
                ["sha256sum", path.name],
                cwd=path.parent,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            path.with_name(path.name + ".sha256").write_text(out)
        stamp.write_text(key + "\n")
    return zst


HOST_TOOLS = (
    *("mmdebstrap", "update-binfmts", "qemu-aarch64-static", "systemd-sysusers", "systemctl"),
    *("mkfs.vfat", "fsck.vfat", "mcopy", "sfdisk", "mkfs.ext4", "e2fsck", "zstd"),
)


def missing_host_tools() -> list[str]:
    return [tool for tool in HOST_TOOLS if shutil.which(tool) is None]


def enable_binfmt() -> None:
    """arm64 programs run through qemu-user: binfmt_misc mounted, qemu-aarch64 registered."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
