"""The diagnostics shell through a real pseudo-terminal, against a real `handset daemon`
(loopback, fake audio): every command, completion, history, and every way out of it that a
system shell would offer, each ending in a clear message with the shell still answering."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware import diag_shell
from lab.terminal import Terminal
from tests.test_daemon_start import HANDSET, write_config

HANDSET_SHELL = str(Path(sys.executable).parent / "handset-shell")
PROMPT = diag_shell.PROMPT
ANSWERING = "number 5551234  name Kim"
"""In every `status`: the shell and the daemon still answer."""


@pytest.fixture(scope="module")
def daemon_socket(tmp_path_factory):
    """One real daemon for the module; its control socket."""
    tmp_path = tmp_path_factory.mktemp("daemon")
    sock = tmp_path / "run" / "control.sock"
    daemon = subprocess.Popen(
        [HANDSET, "daemon", "--config", str(write_config(tmp_path))],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline and daemon.poll() is None:
        time.sleep(0.05)
    assert sock.exists(), "the daemon did not open its control socket"
    yield sock
    daemon.terminate()
    daemon.wait(timeout=30)


@pytest.fixture
def shell(daemon_socket):
    term = Terminal([HANDSET, "shell", "--socket", str(daemon_socket)], os.environ)
    term.expect("handset diagnostics: ")
    term.expect(PROMPT)
    yield term
    term.close()


def run(term: Terminal, line: str) -> str:
    """Type a line and Enter; what the shell printed before its next prompt."""
    term.type(line + "\r")
    term.expect("\r\n")  # the editor's newline after Enter; before it, only its redraws
    return term.expect(PROMPT).replace("\r", "")


def test_every_command_answers_for_a_person(shell, daemon_socket):
    status = run(shell, "status")
    assert "idle, 0 peers" in status and ANSWERING in status
    assert "mesh   unmanaged, ready" in status
    assert json.loads(run(shell, "status --json"))["number"] == "5551234"
    assert run(shell, "peers").strip() == "(none)"
    assert run(shell, "mesh").startswith("mesh   unmanaged, ready")
    assert run(shell, "calls").strip() == "(none)"
    assert run(shell, "audio").startswith("backend fake")
    assert "keypad" in run(shell, "keys")
    assert "control socket" in run(shell, "log")
    assert len(run(shell, "log 2").strip().splitlines()) == 2
    assert "nobody answered for 5559999" in run(shell, "lookup 5559999")
    assert "answer: no call is ringing: the phone is idle" in run(shell, "answer")
    assert "dialling 5559876" in run(shell, "dial 5559876")
    # the phone is looking the number up (no call yet): hanging up puts it back on-hook
    assert "hung up" in run(shell, "hangup")
    assert "hangup: no call to hang up" in run(shell, "hangup")
    assert "test tone: played dial" in run(shell, "test tone")
    for what in ("echo", "keypad"):
        assert f"test {what}" in run(shell, f"test {what}")
    overview = run(shell, "help")
    assert all(f"  {name}" in overview for name in diag_shell.COMMANDS)
    assert run(shell, "help dial").startswith("dial NUMBER")
    shell.type("exit\r")
    shell.expect("bye")
    assert shell.wait() == 0


def test_tab_completes_commands_and_choices_and_up_recalls_the_last_line(shell):
    assert ANSWERING in run(shell, "sta\t")
    assert "test echo" in run(shell, "test e\t")
    assert "test echo" in run(shell, "\x1b[A")  # Up: the line before
    shell.type("d\t")  # dial alone: completed with a space
    shell.type("\x15")  # Ctrl-U: abandon
    assert run(shell, "").strip() == ""


ESCAPE_ATTEMPTS = [
    ("!sh", "'!' means nothing here"),
    ("status; sh", "';' means nothing here"),
    ("status | sh", "'|' means nothing here"),
    ("dial $(id)", "'$' means nothing here"),
    ("dial `id`", "'`' means nothing here"),
    ("status && sh", "'&' means nothing here"),
    ("status > /tmp/x", "'>' means nothing here"),
    ("sh", "unknown command 'sh'"),
    ("/bin/sh", "'/' is not used by any command"),
    ("bash -i", "unknown command 'bash'"),
    ("status --output=/etc/passwd", "'=' means nothing here"),
    ("dial 5551234 --force", "unknown option --force"),
    ("log many", "usage: log [N]"),
    ("caf\u00e9", "is not used by any command"),
]


def test_escape_attempts_get_a_message_and_the_shell_answers_after(shell):
    for line, message in ESCAPE_ATTEMPTS:
        assert message in run(shell, line), line
        assert ANSWERING in run(shell, "status"), line


def test_control_characters_never_reach_a_command(shell):
    assert ANSWERING in run(shell, "sta\x00\x1a\x1c\x07tus")  # ignored keys
    said = run(shell, "status\x1b[2J\x1b]0;owned\x07")  # escape sequences: swallowed
    assert ANSWERING in said


def test_a_one_megabyte_line_is_refused_without_running(shell):
    said = run(shell, "status " + "a" * 1_000_000)
    assert "over the 256-character limit; nothing was run" in said
    assert ANSWERING in run(shell, "status")


def test_ctrl_c_abandons_the_line_and_interrupts_a_waiting_command(shell):
    shell.type("dial 555")
    shell.type("\x03")
    shell.expect("interrupted")
    shell.expect(PROMPT)
    shell.type("lookup 5550000\r")  # waits for the lookup to end: a few seconds
    time.sleep(0.5)
    shell.type("\x03")
    shell.expect("interrupted")
    shell.expect(PROMPT)
    assert ANSWERING in run(shell, "status")


def test_ctrl_d_leaves_cleanly(shell):
    shell.type("\x04")
    shell.expect("bye")
    assert shell.wait() == 0


def test_without_a_daemon_the_shell_says_so_and_keeps_answering(tmp_path):
    term = Terminal([HANDSET, "shell", "--socket", str(tmp_path / "none.sock")], os.environ)
    try:
        term.expect("the daemon does not answer")
        term.expect(PROMPT)
        assert "no control socket" in run(term, "status")
        assert "dial NUMBER" in run(term, "help")
    finally:
        term.close()


def _login(command: str | None, sock: Path, *stdin_lines: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HANDSET_SOCKET": str(sock)}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        [HANDSET_SHELL, "-c", HANDSET_SHELL],  # as sshd runs the ForceCommand
        env=env,
        input="".join(line + "\n" for line in stdin_lines),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ssh_with_a_command_runs_that_one_control_command(daemon_socket):
    done = _login("status --json", daemon_socket)
    assert done.returncode == 0 and json.loads(done.stdout)["number"] == "5551234"


@pytest.mark.parametrize(
    "command",
    ["sh", "status; sh -i", "/usr/lib/openssh/sftp-server", "scp -t /tmp", "rsync --server ."],
)
def test_ssh_with_a_system_command_is_refused(daemon_socket, command):
    done = _login(command, daemon_socket)
    assert done.returncode == diag_shell.EX_USAGE
    assert done.stdout.strip()


def test_ssh_without_a_terminal_reads_commands_line_by_line(daemon_socket):
    done = _login(None, daemon_socket, "status", "!sh", "x" * 5000, "peers")
    assert done.returncode == 0
    assert "0 peers" in done.stdout and "'!' means nothing here" in done.stdout
    assert "over the 256-character limit" in done.stdout
    assert done.stdout.rstrip().endswith("(none)")


@given(st.text(max_size=300))
def test_parse_is_total_a_command_or_a_clear_error(line):
    try:
        invocation = diag_shell.parse(line)
    except diag_shell.ShellError as error:
        assert str(error)
    else:
        assert invocation is None or invocation.name in (*diag_shell.COMMANDS, "help", "exit",
                                                        "quit", "logout")  # fmt: skip


def test_completion_offers_commands_then_their_choices():
    assert diag_shell.complete("st") == ["status"]
    assert diag_shell.complete("test ") == ["tone", "echo", "keypad", "--json"]
    assert diag_shell.complete("help di") == ["dial"]
    assert diag_shell.complete("dial 555") == []


def test_with_the_daemon_down_the_shell_shows_what_is_wrong_in_its_config(tmp_path, monkeypatch):
    bad = tmp_path / "handset.toml"
    bad.write_text('[handset]\nnumber = "5551234"\ncolour = "red"\n')
    monkeypatch.setenv("HANDSET_CONFIG", str(bad))
    out = io.StringIO()
    shell = diag_shell.DiagShell(tmp_path / "none.sock", out, timeout=1.0)
    assert shell.run_line("status") == diag_shell.EX_UNAVAILABLE
    said = out.getvalue()
    assert f"the handset's config {bad} stops it from starting" in said
    assert f"{bad}:3: [handset] colour: unknown key" in said
