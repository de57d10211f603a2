"""A tiny busybox initramfs: load the few modules needed to reach the root, mount it, hand over.

It mounts the read-only ext4 root under a tmpfs overlay (so every boot starts clean), mounts the
9p shares (modules, the repository, the job directory) and switch_roots into the job's own stage-2
script, which the harness writes per run: changing what runs in the guest needs no rebuild.
The archive is left uncompressed, because decompression is slow under TCG.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from vmbench import cache
from vmbench.kernel import Kernel

# What it takes to reach the root and the shares; the rest loads later from the 9p modules.
BOOT_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",  # ext4's metadata checksums
    "ext4",
    "overlay",
    "9pnet_virtio",
    "9p",
)
BUSYBOX = Path("/bin/busybox")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do
    insmod "/modules/$m" || echo "vmbench-init: insmod $m failed"
done
p9="trans=virtio,version=9p2000.L,msize=512000,cache=none"
mkdir -p /lower /rw /newroot
if ! mount -t ext4 -o ro /dev/vda /lower; then
    echo "vmbench-init: no root"; echo o >/proc/sysrq-trigger
fi
mount -t tmpfs -o mode=755 rw /rw
mkdir -p /rw/root /rw/rootwork /rw/src /rw/srcwork /src
mount -t overlay root -o lowerdir=/lower,upperdir=/rw/root,workdir=/rw/rootwork /newroot
mkdir -p /newroot/lib/modules /newroot/job /newroot/src
mount -t 9p -o "$p9,ro" modules /newroot/lib/modules
mount -t 9p -o "$p9" job /newroot/job
# The repository: read-only on the host, writable (tmpfs) for caches the tests leave behind.
mount -t 9p -o "$p9,ro" src /src
mount -t overlay src -o lowerdir=/src,upperdir=/rw/src,workdir=/rw/srcwork /newroot/src \
    || mount --bind /src /newroot/src
for fs in proc sys dev; do mkdir -p /newroot/$fs; mount --move /$fs /newroot/$fs; done
exec switch_root /newroot /bin/sh /job/stage2.sh
"""


def build_key(kern: Kernel) -> str:
    return cache.key(str(kern.vmlinux.parent), cache.source_of(__file__), BUSYBOX.read_bytes())


def initramfs(kern: Kernel, log=print) -> Path:
    out = cache.stage("initramfs", build_key(kern), lambda d: _build(kern, d), log=log)
    return out / "initrd.img"


def module_closure(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Paths (relative to modules_dir) of `wanted` and their dependencies, dependencies first;
    modules built into the kernel are skipped."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    builtin = {_module_name(p) for p in (modules_dir / "modules.builtin").read_text().split()}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    for name in wanted:
        name = name.replace("-", "_")
        if name in builtin:
            continue
        if name not in by_name:
            raise ValueError(f"module {name} is neither built in nor in {modules_dir}")
        visit(by_name[name])
    return order


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _build(kern: Kernel, out: Path) -> None:
    root = out / "tree"
    modules_dir = kern.modules / kern.release
    for sub in ("bin", "proc", "sys", "dev", "modules"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    order = module_closure(modules_dir, BOOT_MODULES)
    for rel in order:
        shutil.copy2(modules_dir / rel, root / "modules" / Path(rel).name)
    (root / "modules.list").write_text("\n".join(Path(rel).name for rel in order) + "\n")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    files = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
    with open(out / "initrd.img", "wb") as archive:
        subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            cwd=root,
            input=files,
            stdout=archive,
            check=True,
        )
    shutil.rmtree(root)
