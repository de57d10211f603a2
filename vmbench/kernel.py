"""Debian's stock amd64 kernel, its modules, and gpio-sim built for it.

The stock kernel has batman-adv, mac80211_hwsim and snd-aloop, which this host's kernel lacks.
We boot its uncompressed vmlinux (PVH entry), because QEMU's TCG spends 5-20 s just decompressing
a vmlinuz. gpio-sim is not enabled in any Debian kernel, so we build it out of tree from the
matching linux-source; irq_sim.c comes along because CONFIG_IRQ_SIM is off too.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from vmbench import cache

APT_LISTS = "/var/lib/apt/lists"
XZ_MAGIC = b"\xfd7zXZ\x00"
GPIO_SIM_FILES = ("drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c")


@dataclass(frozen=True)
class KernelPackage:
    """The current linux-image-<abi>-amd64: the archive keeps only one ABI, so resolve it now."""

    abi: str  # e.g. 6.1.0-56
    version: str  # Debian version, e.g. 6.1.192-2
    series: str  # e.g. 6.1

    @property
    def release(self) -> str:
        return f"{self.abi}-amd64"


@dataclass(frozen=True)
class Kernel:
    vmlinux: Path
    modules: Path  # the lib/modules directory (holds <release>/)
    release: str


def _apt(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def resolve() -> KernelPackage:
    """The kernel linux-image-amd64 depends on now. apt-cache takes seconds here, so the answer
    is remembered for as long as apt's package lists stay the same."""
    lists = _apt_lists_signature()
    memo = cache.cache_root() / "kernel-resolved.json"
    try:
        saved = json.loads(memo.read_text())
        if saved.pop("lists") == lists:
            return KernelPackage(**saved)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    pkg = _resolve_with_apt()
    if lists:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"lists": lists, **asdict(pkg)}))
    return pkg


def _apt_lists_signature() -> str:
    lists = sorted(Path(APT_LISTS).glob("*_Packages*"))
    return ";".join(f"{p.name}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in lists)


def _resolve_with_apt() -> KernelPackage:
    def ask() -> re.Match | None:
        show = _apt("apt-cache", "show", "--no-all-versions", "linux-image-amd64")
        return re.search(
            r"^Depends:.*\blinux-image-(\d+\.\d+\.\d+-\d+)-amd64 \(= (\S+)\)", show, re.M
        )

    try:
        match = ask()
    except subprocess.CalledProcessError:
        match = None
    if not match and os.geteuid() == 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=900", "update", "-q"], check=True)
        match = ask()
    if not match:
        raise RuntimeError(
            "vmbench: apt knows no linux-image-amd64; run `apt-get update` (as root) first"
        )
    abi, version = match.groups()
    return KernelPackage(abi=abi, version=version, series=".".join(abi.split(".")[:2]))


def build_key(pkg: KernelPackage) -> str:
    return cache.key(pkg.version, pkg.abi, cache.source_of(__file__))


def kernel(log=print) -> Kernel:
    pkg = resolve()
    out = cache.stage("kernel", build_key(pkg), lambda d: _build(pkg, d, log), log=log)
    return Kernel(vmlinux=out / "vmlinux", modules=out / "lib" / "modules", release=pkg.release)


def _download(pkg_names: list[str], version: str, dest: Path) -> None:
    """`apt-get download` each package at the kernel's version, or its candidate if the archive
    has moved on for that one (linux-source and linux-kbuild follow their own uploads)."""
    for name in pkg_names:
        try:
            subprocess.run(
                ["apt-get", "download", "-q", f"{name}={version}"],
                cwd=dest,
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError:
            subprocess.run(["apt-get", "download", "-q", name], cwd=dest, check=True)


def _build(pkg: KernelPackage, out: Path, log) -> None:
    work = out / "work"
    debs = work / "debs"
    debs.mkdir(parents=True)
    names = [
        f"linux-image-{pkg.release}",
        f"linux-headers-{pkg.release}",
        f"linux-headers-{pkg.abi}-common",
        f"linux-kbuild-{pkg.series}",
        f"linux-source-{pkg.series}",
    ]
    log(f"vmbench: downloading {' '.join(names)}")
    _download(names, pkg.version, debs)
    unpacked = work / "root"
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)

    vmlinuz = unpacked / "boot" / f"vmlinuz-{pkg.release}"
    (out / "vmlinux").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
    shutil.copy2(unpacked / "boot" / f"config-{pkg.release}", out / "config")
    (out / "lib").mkdir()
    shutil.move(unpacked / "lib" / "modules", out / "lib" / "modules")

    log("vmbench: building gpio-sim.ko")
    ko = _build_gpio_sim(pkg, unpacked, work / "gpio-sim")
    extra = out / "lib" / "modules" / pkg.release / "extra"
    extra.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ko, extra / "gpio-sim.ko")
    subprocess.run(["depmod", "-b", str(out), pkg.release], check=True)
    shutil.rmtree(work)


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The kernel inside a bzImage: the xz stream that starts at the first xz magic."""
    start = vmlinuz.find(XZ_MAGIC)
    if start < 0:
        raise ValueError("no xz stream in vmlinuz (is the kernel still xz-compressed?)")
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = decompressor.decompress(vmlinuz[start:])
    if not elf.startswith(b"\x7fELF"):
        raise ValueError("the xz stream in vmlinuz is not an ELF kernel")
    return elf


def _build_gpio_sim(pkg: KernelPackage, unpacked: Path, build: Path) -> Path:
    src_tar = next((unpacked / "usr" / "src").glob(f"linux-source-{pkg.series}.tar.*"))
    top = f"linux-source-{pkg.series}"
    build.mkdir(parents=True)
    subprocess.run(
        ["tar", "-xf", str(src_tar), "-C", str(build), "--strip-components=3"]
        + [f"{top}/{f}" for f in GPIO_SIM_FILES],
        check=True,
    )
    # A module named gpio-sim cannot also have a gpio-sim.c among its objects.
    (build / "gpio-sim.c").rename(build / "gpio-sim-main.c")
    irq_sim = build / "irq_sim.c"
    text = irq_sim.read_text()
    # irq_to_desc() is not exported to modules; generic_handle_irq() does the same lookup.
    patched = text.replace("handle_simple_irq(irq_to_desc(irqnum))", "generic_handle_irq(irqnum)")
    if patched == text:
        raise RuntimeError("irq_sim.c changed upstream: the irq_to_desc patch no longer applies")
    irq_sim.write_text(patched)
    (build / "Kbuild").write_text("obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n")

    headers = unpacked / "usr" / "src" / f"linux-headers-{pkg.release}"
    _point_headers_at(unpacked, headers)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C"}
    subprocess.run(
        ["make", "-s", "-C", str(headers), f"M={build}", "modules"],
        check=True,
        env=env,
    )
    return build / "gpio-sim.ko"


def _point_headers_at(unpacked: Path, headers: Path) -> None:
    """Debian's headers include and link to /usr/src and /usr/lib paths; rewrite them to the
    unpacked copy so nothing is installed on the host."""
    for makefile in [headers / "Makefile", *headers.glob("*/Makefile")]:
        if makefile.is_file():
            text = makefile.read_text()
            makefile.write_text(text.replace(" /usr/src/", f" {unpacked}/usr/src/"))
    for link in [*headers.iterdir(), *(unpacked / "usr" / "src").glob("*/*")]:
        if link.is_symlink() and os.readlink(link).startswith("/"):
            target = os.readlink(link)
            link.unlink()
            link.symlink_to(str(unpacked) + target)
