"""The guest's root filesystem: Debian bookworm minbase plus the project's Python dependencies.

Built with mmdebstrap into a directory, then packed with `mkfs.ext4 -d` into an image the VM
mounts read-only (each boot gets a fresh tmpfs overlay, so runs cannot leak into each other).
Python wheels are fetched on the host, where pip trusts the certificates, and installed offline
into /opt/venv in the chroot at the versions pinned in constraints.txt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from vmbench import cache

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
DEBIAN_PACKAGES = (
    "python3",
    "python3-venv",
    "iproute2",  # ip, tc, bridge: to look at what the mesh manager did
    "iw",
    "batctl",
    "nftables",
    "kmod",  # modprobe
    "procps",
    "iputils-ping",
    "alsa-utils",  # aplay/arecord for the snd-aloop smoke test
    "libasound2",  # pyalsaaudio
    "libopus0",  # opuslib_next loads it with ctypes
    "gpiod",  # gpioget/gpioset to check gpio-sim from outside Python
    # systemd as PID 1 for the appliance tests (tests/vm/test_appliance_bench.py): the units of
    # systemd/, udev for the radio's device unit, sshd for the diag login.
    "systemd",
    "udev",
    "openssh-server",
    "openssh-client",
)
# The guest gets the project's dependencies and its `test` extra (pyproject.toml), at the versions
# pinned in constraints.txt, plus what only the bench tests use, minus what it cannot use.
GUEST_ONLY_PACKAGES = ("rpi-lgpio", "lgpio")  # RPi.GPIO's API against gpio-sim
NOT_IN_GUEST = {"ruff", "mypy"}  # linters
GUEST_PYTHON = "/opt/venv/bin/python"
# Trimmed from the image: the VM never reads them and they cost boot-image size.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
WARM_TEST = """
import hypothesis.strategies as st
from hypothesis import given


@given(st.binary())
def test_warm(data):
    assert isinstance(data, bytes)
"""
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def guest_packages(repo: Path) -> list[str]:
    """Distribution names to install in the guest, from the repo's pyproject.toml."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = [
        *project.get("dependencies", []),
        *project.get("optional-dependencies", {}).get("test", []),
        *project.get("optional-dependencies", {}).get("systemd", []),
    ]
    names = [re.match(r"\s*([A-Za-z0-9_.-]+)", req).group(1) for req in wanted]
    names += GUEST_ONLY_PACKAGES
    seen: dict[str, str] = {}
    for name in names:
        if _normalise(name) not in NOT_IN_GUEST:
            seen.setdefault(_normalise(name), name)
    return sorted(seen.values())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_key(repo: Path) -> str:
    return cache.key(
        "\n".join(guest_packages(repo)),
        (repo / "constraints.txt").read_bytes(),
        cache.source_of(__file__),
    )


def rootfs(repo: Path, log=print) -> Path:
    """The path of root.img, built if missing."""
    out = cache.stage("rootfs", build_key(repo), lambda d: _build(repo, d, log), log=log)
    return out / "root.img"


def _build(repo: Path, out: Path, log) -> None:
    if os.geteuid() != 0:
        raise RuntimeError("vmbench: building the root image needs root (mmdebstrap, chroot)")
    wheels = out / "wheels"
    requirements = guest_packages(repo)
    log(f"vmbench: building wheels for {' '.join(requirements)} (pinned by constraints.txt)")
    # --isolated: the host's pip config and PIP_* variables must not pick the guest's wheels.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "wheel",
            "-q",
            "-c",
            str(repo / "constraints.txt"),
            "-w",
            str(wheels),
            *requirements,
        ],
        check=True,
        env=CLEAN_ENV,
    )
    (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (wheels / "warm_test.py").write_text(WARM_TEST)

    tree = out / "tree"
    log(f"vmbench: mmdebstrap {SUITE} into {tree}")
    venv = Path(GUEST_PYTHON).parent.parent
    install_wheels = " && ".join(
        [
            f'chroot "$1" python3 -m venv {venv}',
            f'chroot "$1" {GUEST_PYTHON} -m pip install -q --no-index --no-cache-dir'
            " --disable-pip-version-check --find-links /tmp/wheels -r /tmp/wheels/requirements.txt",
            f'chroot "$1" {GUEST_PYTHON} -m pip freeze > "$1"{venv}/freeze.txt',
            # pytest rewrites the asserts of its plugins' whole distributions (hypothesis: ~80
            # modules, 20-40 s under TCG) at each start, unless the rewritten bytecode is cached.
            f'chroot "$1" sh -c "cd /tmp/wheels && {GUEST_PYTHON} -m pytest -q'
            ' -p no:cacheprovider warm_test.py"',
            'rm -rf "$1"/tmp/wheels "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*',
        ]
    )
    cmd = [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES),
        '--customize-hook=mkdir -p "$1"/src "$1"/job "$1"/tmp/wheels',
        f"--customize-hook=sync-in {wheels} /tmp/wheels",
        f"--customize-hook={install_wheels}",
        SUITE,
        str(tree),
        *MIRRORS,
    ]
    # env -i: the host's PIP_*, http_proxy and friends must not leak into the guest's build.
    subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in CLEAN_ENV.items()), *cmd], check=True)

    used_mb = int(
        subprocess.run(
            ["du", "-sm", str(tree)], check=True, capture_output=True, text=True
        ).stdout.split()[0]
    )
    size_mb = used_mb + used_mb // 4 + 64
    log(f"vmbench: mkfs.ext4 {size_mb} MB from {used_mb} MB")
    shutil.copy2(tree / "opt" / "venv" / "freeze.txt", out / "freeze.txt")
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "vmbench-root",
            "-d",
            str(tree),
            str(out / "root.img"),
            f"{size_mb}M",
        ],
        check=True,
    )
    shutil.rmtree(tree)
    shutil.rmtree(wheels)
