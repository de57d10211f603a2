"""The handset as an appliance, in a VM booted with systemd as PID 1 and the units of systemd/
installed by `systemd/install /`: the service waits for its radio and reaches READY; a stalled
event loop (SIGSTOP) is restarted by the watchdog with the same identity; `systemctl stop`
during a call ends it on the far side with CALLENDED; the journal holds one call under its
CALL_ID; `diag` logs in over SSH with a key, into the diagnostics shell only.

The radio here is a veth named wlan0 (the unit waits for sys-subsystem-net-devices-wlan0.device),
in unmanaged mode; the far handset is a second `handset daemon` in a network namespace at the
veth's other end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmbench.guest import in_guest, sh

pytestmark = pytest.mark.vm_systemd

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path("/opt/handset")
CONFIG = Path("/etc/handset/handset.toml")
SOCKET = Path("/run/handset/control.sock")
FAR = Path("/tmp/far")
FAR_NETNS = "far"
NUMBER, FAR_NUMBER = "5551234", "5559876"
LAUNCHER = """#!{python}
import sys

sys.path.insert(0, {src!r})
from {module} import {function}

sys.exit({function}())
"""
DEADLINE_S = 180.0  # TCG: Python starts in seconds, a restart takes watchdog + abort + start


def systemctl_show(*properties: str) -> dict[str, str]:
    out = sh("systemctl", "show", "handset.service", *(f"--property={p}" for p in properties))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(what: str, check, timeout: float = DEADLINE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    journal = sh("journalctl", "-u", "handset", "--no-pager", "-n", "60", check=False)
    raise AssertionError(f"timed out waiting for {what}; journal:\n{journal}")


def ask(command: str, *args: str, sock: Path = SOCKET) -> dict:
    env = {**os.environ, "HANDSET_SOCKET": str(sock)}
    done = subprocess.run(
        [str(PREFIX / "bin" / "handset"), command, *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def service_ready() -> dict[str, str] | None:
    shown = systemctl_show("ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    return shown if (shown["ActiveState"], shown["SubState"]) == ("active", "running") else None


@pytest.fixture(scope="module")
def appliance():
    if not in_guest():
        pytest.skip("runs only inside the VM")
    if not Path("/run/systemd/system").is_dir():
        pytest.skip("this boot has no systemd as PID 1 (mark the test vm_systemd)")
    (PREFIX / "bin").mkdir(parents=True, exist_ok=True)
    for name, module, function in (
        ("handset", "firmware.cli", "main"),
        ("handset-shell", "firmware.diag_shell", "login"),
    ):
        path = PREFIX / "bin" / name
        path.write_text(
            LAUNCHER.format(python=sys.executable, src=str(REPO), module=module, function=function)
        )
        path.chmod(0o755)
    sh(str(REPO / "systemd" / "install"), "/", "--prefix", str(PREFIX))
    sh("systemd-sysusers")
    sh("systemd-tmpfiles", "--create")
    CONFIG.write_text(
        f'[handset]\nnumber = "{NUMBER}"\nname = "Kim"\nauto_answer = true\n'
        '[mesh]\nmode = "unmanaged"\ninterface = "wlan0"\n[audio]\nbackend = "fake"\n'
    )
    dropin = Path("/etc/systemd/system/handset.service.d/bench.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(f"[Service]\nEnvironment=HANDSET_CONFIG={CONFIG}\n")
    sh("udevadm", "control", "--reload")
    sh("systemctl", "daemon-reload")
    yield
    sh("systemctl", "stop", "handset.service", check=False)
    sh("ip", "netns", "del", FAR_NETNS, check=False)


def make_radio() -> None:
    """wlan0 appears: a veth whose other end (far0) is the far handset's, in its namespace."""
    sh("ip", "netns", "add", FAR_NETNS)
    sh("ip", "link", "add", "wlan0", "type", "veth", "peer", "name", "far0")
    sh("ip", "link", "set", "far0", "netns", FAR_NETNS)
    sh("ip", "addr", "add", "10.99.0.1/24", "dev", "wlan0")
    sh("ip", "link", "set", "wlan0", "up")
    sh("ip", "addr", "add", "10.99.0.2/24", "dev", "far0", netns=FAR_NETNS)
    sh("ip", "link", "set", "far0", "up", netns=FAR_NETNS)
    sh("ip", "link", "set", "lo", "up", netns=FAR_NETNS)


def test_the_service_waits_for_its_radio_then_is_ready_with_least_rights(appliance):
    sh("systemctl", "start", "--no-block", "handset.service")
    time.sleep(3)
    assert systemctl_show("ActiveState")["ActiveState"] != "active"
    assert "handset.service" in sh("systemctl", "list-jobs", "--no-pager")
    make_radio()
    shown = wait_for("READY", service_ready)
    assert shown["StatusText"].startswith("idle, "), shown
    pid = shown["MainPID"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid = sh("id", "-u", "handset").strip()
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
    effective = int(next(x for x in status.splitlines() if x.startswith("CapEff")).split()[1], 16)
    assert effective == (1 << 12) | (1 << 13), "CAP_NET_ADMIN and CAP_NET_RAW only"
    assert "SCHED_FIFO" in sh("chrt", "-p", pid), "real time through LimitRTPRIO"
    assert ask("status")["number"] == NUMBER


def test_a_stalled_event_loop_is_restarted_by_the_watchdog_with_the_same_identity(appliance):
    before = wait_for("READY", service_ready)
    sid = ask("status")["sid"]
    sh("systemctl", "kill", "--signal=SIGSTOP", "handset.service")
    after = wait_for(
        "a restart",
        lambda: (s := service_ready()) and s["MainPID"] != before["MainPID"] and s,
    )
    assert int(after["NRestarts"]) > int(before["NRestarts"])
    assert "Watchdog timeout" in sh("journalctl", "-u", "handset", "--no-pager")
    assert ask("status")["sid"] == sid


def test_diag_logs_in_over_ssh_with_a_key_into_the_shell_only(appliance, tmp_path):
    wait_for("READY", service_ready)
    key = tmp_path / "diag_key"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    Path("/etc/handset/diag_authorized_keys").write_text(key.with_suffix(".pub").read_text())
    # a real boot reaches this at multi-user: it lifts /run/nologin, which refuses users
    sh("systemctl", "start", "systemd-user-sessions.service", "ssh.service")
    sh("sshd", "-t")
    effective = sh("sshd", "-T", "-C", "user=diag,host=laptop,addr=10.99.0.2").splitlines()
    assert {
        f"forcecommand {PREFIX}/bin/handset-shell",
        "authenticationmethods publickey",
        "passwordauthentication no",
        "authorizedkeysfile /etc/handset/diag_authorized_keys",
        "allowtcpforwarding no",
        "permittunnel no",
        "permituserrc no",
    } <= set(effective)
    options = [
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-v",
    ]  # fmt: skip

    def ssh(*args: str, key_file: Path | None = key) -> subprocess.CompletedProcess[str]:
        identity = ["-i", str(key_file)] if key_file else ["-o", "PubkeyAuthentication=no"]
        return subprocess.run(
            ["ssh", *options, *identity, *args], capture_output=True, text=True, timeout=120
        )

    status = ssh("diag@127.0.0.1", "status --json")
    sshd_log = sh("journalctl", "-u", "ssh", "--no-pager", "-n", "40", check=False)
    assert status.returncode == 0, f"{status.stdout}\n{status.stderr}\nsshd:\n{sshd_log}"
    assert json.loads(status.stdout)["number"] == NUMBER
    escape = ssh("diag@127.0.0.1", "sh -c id")
    assert escape.returncode == 2 and "unknown command 'sh'" in escape.stdout
    sftp = ssh("-s", "diag@127.0.0.1", "sftp")
    assert sftp.returncode == 2 and "not used by any command" in sftp.stdout
    no_key = ssh("diag@127.0.0.1", "status", key_file=None)
    assert no_key.returncode == 255 and "Permission denied" in no_key.stderr


def test_stopping_the_service_during_a_call_ends_it_on_the_far_side(appliance):
    wait_for("READY", service_ready)
    FAR.mkdir(parents=True, exist_ok=True)
    far_config = FAR / "handset.toml"
    far_sock = FAR / "control.sock"
    far_config.write_text(
        f'[handset]\nnumber = "{FAR_NUMBER}"\nname = "Far"\nstate_dir = "{FAR / "state"}"\n'
        '[mesh]\nmode = "unmanaged"\ninterface = "far0"\n'
        '[audio]\nbackend = "fake"\nrealtime_priority = 0\n'
        f'[control]\nsocket = "{far_sock}"\n'
    )
    far = subprocess.Popen(
        ["ip", "netns", "exec", FAR_NETNS, str(PREFIX / "bin" / "handset"), "daemon",
         "--config", str(far_config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for("the far handset", far_sock.exists)
        ask("dial", NUMBER, sock=far_sock)
        wait_for(
            "the call (auto-answered)",
            lambda: ask("status", sock=far_sock).get("call", {}).get("state") == "INCALL",
        )
        call_id = ask("status")["call"]["id"]
        sh("systemctl", "stop", "handset.service")
        far_log = wait_for(
            "the far side to see the call end",
            lambda: [
                line
                for line in ask("log", sock=far_sock)["lines"]
                if "/CALLENDED" in line or " gone (" in line
            ],
            timeout=60,
        )
        assert any("/CALLENDED with" in line for line in far_log), far_log
        assert not any("timed out" in line for line in far_log), far_log
    finally:
        far.terminate()
        far.wait(timeout=60)
    one_call = sh("journalctl", "-u", "handset", f"CALL_ID={call_id}", "-o", "json", "--no-pager")
    entries = [json.loads(line) for line in one_call.splitlines()]
    assert len(entries) >= 2
    assert all(e["CALL_ID"] == str(call_id) for e in entries)
    assert {"PEER_SID", "NUMBER", "STATE"} <= set().union(*entries)
    assert any(e.get("STATE") == "INCALL" and e.get("NUMBER") == FAR_NUMBER for e in entries)
