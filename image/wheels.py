"""The Python packages of the image: arm64 wheels from PyPI where they exist, sdists otherwise.

Everything is pinned by constraints.txt (the versions the tests run). Downloaded on the host
(where pip trusts the certificates) and installed offline in the arm64 chroot, where the sdists
(pyalsaaudio, systemd-python: PyPI has no arm64 wheel) compile against Debian's headers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

PYTHON_VERSION = "3.11"  # bookworm's python3
# manylinux tags bookworm's glibc 2.36 can load.
PLATFORMS = (
    "linux_aarch64",
    "manylinux2014_aarch64",
    *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)),
)
SOURCE_ONLY = {"pyalsaaudio", "systemd-python"}  # compiled in the chroot
# sd_notify and the journal; RPi.GPIO's API on the gpiochip character device (rpi-lgpio).
EXTRAS_ON_IMAGE = ("systemd", "gpio")
PINNED_DEPENDENCIES = ("lgpio",)  # rpi-lgpio's, pinned in constraints.txt as well
BUILD_BACKEND = ("setuptools", "wheel")  # for the sdists' isolated builds, offline
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_requirements(repo: Path) -> list[str]:
    """Distribution names the image's venv gets: the project's dependencies and the extras only
    a Pi uses (pyproject.toml)."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = list(project.get("dependencies", []))
    for extra in EXTRAS_ON_IMAGE:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    names = [re.match(r"\s*([A-Za-z0-9_.-]+)", req).group(1) for req in wanted]
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(normalise(name), name)
    return sorted(seen.values())


def image_pins(repo: Path) -> list[str]:
    """The lines of constraints.txt that pin what the image installs, so the pin of a test-only
    tool (mypy) does not rebuild the image's base. Unpinned dependencies (cffi) take PyPI's
    newest when the base is built."""
    wanted = {normalise(name) for name in [*image_requirements(repo), *PINNED_DEPENDENCIES]}
    pins = []
    for line in (repo / "constraints.txt").read_text().splitlines():
        pin = line.split("#", 1)[0].strip()
        if pin and normalise(re.split(r"[=<>!~;\[ ]", pin, maxsplit=1)[0]) in wanted:
            pins.append(pin)
    return sorted(pins)


def download(repo: Path, out: Path) -> None:
    """Fill `out` with the wheels and sdists, requirements.txt and constraints.txt."""
    out.mkdir(parents=True, exist_ok=True)
    constraints = repo / "constraints.txt"
    requirements = image_requirements(repo)
    binary = [name for name in requirements if normalise(name) not in SOURCE_ONLY]
    source = [name for name in requirements if normalise(name) in SOURCE_ONLY]
    target = [
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        *(f"--platform={platform}" for platform in PLATFORMS),
    ]
    _pip("download", *target, "-c", str(constraints), "-d", str(out), *binary)
    _pip(
        "download",
        "--no-binary=:all:",
        "--no-deps",
        "-c",
        str(constraints),
        "-d",
        str(out),
        *source,
    )
    _pip("download", "--only-binary=:all:", "-d", str(out), *BUILD_BACKEND)
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (out / "constraints.txt").write_bytes(constraints.read_bytes())


def _pip(*args: str) -> None:
    # --isolated: the host's pip config and PIP_* variables (find-links to host wheels) stay out.
    subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "-q", "--disable-pip-version-check", *args],
        check=True,
        env=CLEAN_ENV,
    )
