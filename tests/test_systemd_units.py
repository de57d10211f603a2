"""The units as systemd itself reads them: `systemd-analyze verify`, the hardening score,
and the sysusers/tmpfiles files applied to a scratch root by systemd's own tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target")
UNITS = sorted(p.name for p in (REPO / "systemd").iterdir() if p.suffix in UNIT_SUFFIXES)
MAX_EXPOSURE = 2.5
# The unit's ExecStart must name an executable that exists: the venv's `handset`.
PREFIX = Path(sys.executable).parent.parent

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (package systemd, in tools/apt-test-packages.txt)",
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    subprocess.run(
        [str(INSTALL), str(tmp_path), "--prefix", str(PREFIX)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tmp_path


def _installed_unit(root: Path, name: str) -> Path:
    return root / "usr" / "lib" / "systemd" / "system" / name


def test_install_puts_every_file_in_place_and_enables_the_service(root):
    expected = [
        "usr/lib/systemd/system/handset.service",
        "usr/lib/sysusers.d/handset.conf",
        "usr/lib/tmpfiles.d/handset.conf",
        "usr/lib/udev/rules.d/60-handset-gpio.rules",
        "usr/lib/modules-load.d/handset.conf",
        "etc/ssh/sshd_config.d/handset-diag.conf",
    ]
    assert [p for p in expected if not (root / p).is_file()] == []
    link = root / "etc/systemd/system/multi-user.target.wants/handset.service"
    assert link.readlink() == Path("/usr/lib/systemd/system/handset.service")
    unit = _installed_unit(root, "handset.service").read_text()
    assert f"ExecStart={PREFIX}/bin/handset daemon --config" in unit
    sshd = (root / "etc/ssh/sshd_config.d/handset-diag.conf").read_text()
    assert f"ForceCommand {PREFIX}/bin/handset-shell" in sshd
    assert "@HANDSET" not in unit + sshd


def test_install_refuses_a_relative_prefix(tmp_path):
    done = subprocess.run(
        [str(INSTALL), str(tmp_path), "--prefix", "opt/handset"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "absolute" in done.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify(root, unit):
    done = subprocess.run(
        ["systemd-analyze", "verify", str(_installed_unit(root, unit))],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stderr) == (0, "")


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_is_at_most_2_5(root, unit):
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_installed_unit(root, unit))],
        capture_output=True,
        text=True,
        check=True,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert score is not None, done.stdout
    print(f"{unit}: exposure {score.group(1)}")
    assert float(score.group(1)) <= MAX_EXPOSURE, done.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd is missing")
def test_sysusers_and_tmpfiles_make_the_users_and_directories(root):
    etc = root / "etc"
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", etc / name)
    for name in ("shadow", "gshadow"):
        (etc / name).touch()
    subprocess.run(["systemd-sysusers", f"--root={root}"], check=True, capture_output=True)
    subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create"], check=True)
    users = _entries(etc / "passwd")
    groups = _entries(etc / "group")
    assert users["diag"][6] == f"{PREFIX}/bin/handset-shell"
    assert users["handset"][6].endswith("nologin")
    assert "diag" in groups["handset"][3].split(","), "diag reaches the control socket"
    assert "handset" in groups["gpio"][3].split(",")
    assert "handset" in groups["audio"][3].split(",")
    state = root / "var" / "lib" / "handset"
    assert (state.stat().st_mode & 0o777, state.stat().st_uid) == (0o700, int(users["handset"][2]))
    keys = root / "etc" / "handset" / "diag_authorized_keys"
    assert (keys.stat().st_mode & 0o777, keys.stat().st_uid) == (0o644, 0)


def _entries(path: Path) -> dict[str, list[str]]:
    """/etc/passwd or /etc/group as name -> fields."""
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines()}
