"""Boot the bench VM once, run one shell command in it, bring back its exit code and output.

One boot per command: the guest is QEMU TCG (this host's KVM cannot run a stock kernel), so a boot
costs ~5 s and Python runs ~10x slower than natively. Batch a whole pytest run into one command.

The guest sees:
  /src          the repository (read-only 9p share under a tmpfs overlay: writes vanish)
  /job          a per-run host directory, writable: the command's output.log, rc, and anything
                the command leaves there (junit xml, results.json) come back to the host
  /lib/modules  the stock kernel's modules plus gpio-sim
  /opt/venv     Python 3.11 with the project's pinned dependencies
and no network card.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vmbench.image import Image

QEMU = "qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"
KERNEL_ARGS = (
    "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off tsc=reliable systemd.show_status=0"
)

STAGE2 = r"""#!/bin/sh
# vmbench stage 2: PID 1 inside the guest's root. Mounts what a bare shell needs, then the job.
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=755 run /run
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up
exec /bin/sh /job/job.sh
"""

# With systemd as PID 1 (init="systemd"): systemd mounts and starts udev, journald, sysusers...
# (basic.target), then vmbench-job.service runs the same job script on the serial console.
STAGE2_SYSTEMD = r"""#!/bin/sh
# vmbench stage 2: hand PID 1 to systemd, which runs the job as a service.
mkdir -p /etc/systemd/system
cat > /etc/systemd/system/vmbench.target <<'UNIT'
[Unit]
Description=vmbench: basic system and the job
Requires=basic.target
After=basic.target
Wants=vmbench-job.service
UNIT
cat > /etc/systemd/system/vmbench-job.service <<'UNIT'
[Unit]
Description=vmbench job
[Service]
Type=oneshot
ExecStart=/bin/sh /job/job.sh
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
UNIT
exec /lib/systemd/systemd --unit=vmbench.target
"""

JOB = r"""#!/bin/sh
# vmbench job: /job/cmd.sh with its output on the console and in /job/output.log; power off.
modprobe configfs 2>/dev/null
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config 2>/dev/null
hostname vmbench
export PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
export VMBENCH_GUEST=1 LG_WD=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
cd /src
echo "vmbench: guest up after $(cut -d' ' -f1 /proc/uptime) s"
{ bash /job/cmd.sh; echo $? > /job/rc; } 2>&1 | tee /job/output.log
sync
echo o > /proc/sysrq-trigger
while :; do sleep 1; done  # PID 1 (or its job) must not end while the power-off runs
"""
INITS = ("shell", "systemd")
"""What runs as PID 1 in the guest: a shell (fast: ~5 s to the job) or systemd (~20 s)."""


@dataclass
class VmResult:
    returncode: int  # the command's exit code; -1 if the guest died before it finished
    output: str  # what the command printed (stdout and stderr)
    console: str  # the whole serial console, kernel messages included
    job_dir: Path  # files the command left in /job
    boot_seconds: float  # QEMU start to the guest running the command (host clock)
    total_seconds: float


def run(
    command: str,
    image: Image,
    repo: Path,
    job_dir: Path | None = None,
    timeout: float = 900,
    memory_mb: int = 512,
    echo: bool = False,
    init: str = "shell",
) -> VmResult:
    """Boot, run `command` with bash in /src, power off. `echo` streams the console to stderr.
    `init` is what runs as PID 1: "shell" or "systemd" (the units, journald, udev: for the
    appliance tests)."""
    if init not in INITS:
        raise ValueError(f"init {init!r}: choose one of {', '.join(INITS)}")
    job = Path(job_dir) if job_dir else Path(tempfile.mkdtemp(prefix="vmbench-job-"))
    job.mkdir(parents=True, exist_ok=True)
    for stale in ("rc", "output.log"):
        (job / stale).unlink(missing_ok=True)
    (job / "cmd.sh").write_text(command + "\n")
    (job / "stage2.sh").write_text(STAGE2 if init == "shell" else STAGE2_SYSTEMD)
    (job / "job.sh").write_text(JOB)
    argv = qemu_argv(image, Path(repo), job, memory_mb)
    start = time.monotonic()
    boot_seconds: float | None = None
    console: list[str] = []
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        for raw in _lines_until(proc, start + timeout):
            line = raw.decode(errors="replace").replace("\r", "")
            console.append(line)
            if line.startswith("vmbench: guest up") and boot_seconds is None:
                boot_seconds = time.monotonic() - start
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    total = time.monotonic() - start
    rc_file = job / "rc"
    returncode = int(rc_file.read_text().strip() or -1) if rc_file.exists() else -1
    output_file = job / "output.log"
    output = output_file.read_text(errors="replace") if output_file.exists() else ""
    boot = boot_seconds if boot_seconds is not None else float("nan")
    return VmResult(returncode, output, "".join(console), job, boot, total)


def _lines_until(proc: subprocess.Popen, deadline: float):
    """The console's lines; kill QEMU if the guest is still running at the deadline."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            yield b"vmbench: timed out, guest killed\n"
            return
        if not sel.select(timeout=min(remaining, 1.0)):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line + b"\n"


def qemu_argv(image: Image, repo: Path, job: Path, memory_mb: int = 512) -> list[str]:
    def share(tag: str, path: Path, readonly: bool) -> list[str]:
        opts = f"local,path={path},mount_tag={tag},security_model=none"
        return ["-virtfs", opts + (",readonly=on" if readonly else "")]

    return [
        QEMU,
        "-accel", "tcg,tb-size=256",
        "-cpu", "max",
        "-m", str(memory_mb),
        "-smp", "1",
        "-M", "pc",
        "-bios", QBOOT,
        "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
        "-serial", "stdio", "-no-reboot",
        "-kernel", str(image.vmlinux),
        "-initrd", str(image.initrd),
        "-append", KERNEL_ARGS,
        "-drive", f"file={image.root},if=virtio,format=raw,readonly=on",
        *share("modules", image.modules, readonly=True),
        *share("src", repo.resolve(), readonly=True),
        *share("job", job.resolve(), readonly=False),
    ]  # fmt: skip


def missing_host_tools() -> list[str]:
    """Host programs the bench needs; empty when it can run."""
    needed = [QEMU, "mmdebstrap", "mkfs.ext4", "cpio", "dpkg-deb", "apt-get", "make", "gcc"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    missing += [path for path in (QBOOT, "/bin/busybox") if not os.path.exists(path)]
    return missing
