"""`handset shell`: the diagnostics shell, the login shell of the `diag` SSH user.

It offers the control socket's commands (status, peers, mesh, calls, audio, keys, log, lookup,
dial/answer/hangup, test) and nothing else: a line is split into words, checked against the
table below and sent as one request of firmware.control_protocol. No line ever reaches a
system shell, no process is started and no file is written, so `!sh`, `;`, `|`, `$(...)` and
backquotes are only characters no command uses, and each gets a message saying so.

As a login shell (`handset-shell`) it is run by sshd as `handset-shell -c COMMAND`: with the
ForceCommand of systemd/sshd-diag.conf, a command given to ssh arrives in
$SSH_ORIGINAL_COMMAND and runs as one control command (`ssh diag@handset status --json`);
without one the shell is interactive.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from firmware import status_view as view
from firmware.control_protocol import (
    TEST_KINDS,
    ControlError,
    ProtocolError,
    Request,
    Response,
    ask,
    socket_path,
)
from firmware.line_editor import LineEditor, LineTooLong, read_plain_line
from vomp.dna import is_valid_did

PROMPT = "handset> "
MAX_LINE = 256
EX_USAGE, EX_UNAVAILABLE = 2, 69
LOGIN_SHELL = "handset-shell"
ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 *#+-_.")
SHELL_CHARACTERS = set(";|&$`<>(){}!\\'\"~=%^?[]")
"""Characters a system shell gives meaning to; here they only get an explanation."""
EXIT_WORDS = ("exit", "quit", "logout")


@dataclass(frozen=True)
class ShellCommand:
    arguments: tuple[str, ...]  # shown upper case in help: NUMBER, WHAT, [N]
    help: str
    show: Callable[[Any], str]
    choices: tuple[str, ...] = ()  # for WHAT


def _show_call(name: str) -> Callable[[Any], str]:
    return lambda result: view.format_call_command(name, result)


COMMANDS: dict[str, ShellCommand] = {
    "status": ShellCommand((), "what the handset is doing: call, audio, mesh", view.format_status),
    "peers": ShellCommand((), "handsets heard directly: SID, address, when", view.format_peers),
    "mesh": ShellCommand((), "the mesh: address, radio, heals, link TQ", view.format_mesh),
    "calls": ShellCommand((), "every call known: state, duration, loss", view.format_calls),
    "audio": ShellCommand((), "sound card and call audio statistics", view.format_audio),
    "keys": ShellCommand((), "recent keypad keys and the hook", view.format_keys),
    "log": ShellCommand(("[N]",), "the daemon's last N log lines (default 20)", view.format_log),
    "lookup": ShellCommand(("NUMBER",), "ask the mesh who has NUMBER", view.format_lookup),
    "dial": ShellCommand(("NUMBER",), "call NUMBER", _show_call("dial")),
    "answer": ShellCommand((), "pick up the ringing call", _show_call("answer")),
    "hangup": ShellCommand((), "end the call (or reject the ringing one)", _show_call("hangup")),
    "test": ShellCommand(("WHAT",), "self test: tone, echo, keypad", view.format_test, TEST_KINDS),
}  # fmt: skip
LOG_LINES_SHOWN = 20


@dataclass(frozen=True)
class Invocation:
    name: str
    args: dict[str, str]
    json: bool = False
    count: int | None = None  # log N


class ShellError(Exception):
    """A line that is not a command; the message says why and what to type instead."""


def parse(line: str) -> Invocation | None:
    """The command a line asks for (None for a blank line); ShellError if it is not one."""
    text = line.strip()
    if not text:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ShellError("control characters are not part of any command (type help)")
    odd = [c for c in text if c not in ALLOWED]
    if odd:
        first = odd[0]
        if first in SHELL_CHARACTERS:
            raise ShellError(
                f"{first!r} means nothing here: one handset command per line, no system shell "
                "(type help)"
            )
        raise ShellError(f"{first!r} is not used by any command; type help for the commands")
    words = text.split()
    name = words[0].lower()
    if name not in COMMANDS and name not in ("help", *EXIT_WORDS):
        close = difflib.get_close_matches(name, [*COMMANDS, "help", "exit"], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ShellError(f"unknown command {words[0]!r}; {hint}type help for the commands")
    flags = [w for w in words[1:] if w.startswith("--")]
    positional = [w for w in words[1:] if not w.startswith("--")]
    if name in ("help", *EXIT_WORDS):
        if flags or len(positional) > (1 if name == "help" else 0):
            raise ShellError(f"usage: {'help [COMMAND]' if name == 'help' else name}")
        return Invocation(name, {"command": positional[0].lower()} if positional else {})
    wrong_flags = [f for f in flags if f != "--json"]
    if wrong_flags:
        raise ShellError(f"{name}: unknown option {wrong_flags[0]}; only --json is offered")
    return _bind(name, positional, "--json" in flags)


def _bind(name: str, positional: list[str], as_json: bool) -> Invocation:
    spec = COMMANDS[name]
    usage = f"usage: {name} {' '.join(spec.arguments)}".rstrip()
    if name == "log":
        if len(positional) > 1 or (positional and not positional[0].isdigit()):
            raise ShellError(f"{usage}  (N: how many lines, e.g. log 50)")
        count = int(positional[0]) if positional else LOG_LINES_SHOWN
        return Invocation(name, {}, as_json, count)
    if len(positional) != len(spec.arguments):
        raise ShellError(usage)
    args: dict[str, str] = {}
    if spec.arguments == ("NUMBER",):
        number = positional[0]
        if not is_valid_did(number):
            raise ShellError(f"{name}: {number!r} is not a number (5 to 31 of 0-9 * # +)")
        args["number"] = number
    elif spec.arguments == ("WHAT",):
        what = positional[0].lower()
        if what not in spec.choices:
            raise ShellError(f"{usage}  (WHAT: {' | '.join(spec.choices)})")
        args["what"] = what
    return Invocation(name, args, as_json)


def help_text(topic: str | None = None) -> str:
    if topic is not None:
        if topic not in COMMANDS:
            return f"no command {topic!r}; type help for the commands"
        spec = COMMANDS[topic]
        usage = " ".join([topic, *spec.arguments]) + (" [--json]" if topic not in _ACTIONS else "")
        return f"{usage}\n  {spec.help}"
    width = max(len("help [COMMAND]"), *(len(_usage(name)) for name in COMMANDS))
    lines = ["Commands (add --json to status, peers, ... for the machine-readable form):"]
    lines += [f"  {_usage(name):<{width}}  {spec.help}" for name, spec in COMMANDS.items()]
    lines += [
        f"  {'help [COMMAND]':<{width}}  this list, or one command",
        f"  {'exit':<{width}}  leave (also Ctrl-D)",
        "Keys: Tab completes, Up/Down recall earlier lines, Ctrl-C abandons a line or command.",
    ]
    return "\n".join(lines)


_ACTIONS = ("dial", "answer", "hangup")


def _usage(name: str) -> str:
    return " ".join([name, *COMMANDS[name].arguments])


def complete(before_cursor: str) -> list[str]:
    """Tab completion: command names for the first word, then the command's choices."""
    words = before_cursor.split(" ")
    if len(words) == 1:
        return [n for n in (*COMMANDS, "help", "exit") if n.startswith(words[0].lower())]
    name, word = words[0].lower(), words[-1]
    options: tuple[str, ...] = ()
    if name == "help" and len(words) == 2:
        options = tuple(COMMANDS)
    elif name in COMMANDS:
        options = COMMANDS[name].choices if len(words) == 2 else ()
        if name not in _ACTIONS:
            options = (*options, "--json")
    return [o for o in options if o.startswith(word)]


class DiagShell:
    """Runs lines against the daemon and writes what a person reads."""

    def __init__(self, socket: Path, out: TextIO, timeout: float = 30.0) -> None:
        self.socket = socket
        self.out = out
        self.timeout = timeout

    def run_line(self, line: str) -> int | None:
        """Do one line; its exit status (0 done, 1 refused, 2 not a command, 69 no daemon), or
        None for `exit`."""
        try:
            invocation = parse(line)
        except ShellError as error:
            self.say(str(error))
            return EX_USAGE
        if invocation is None:
            return 0
        if invocation.name in EXIT_WORDS:
            return None
        if invocation.name == "help":
            self.say(help_text(invocation.args.get("command")))
            return 0
        return self._request(invocation)

    def _request(self, invocation: Invocation) -> int:
        try:
            request = Request(invocation.name, invocation.args)
        except ProtocolError as error:
            self.say(f"{invocation.name}: {error}")
            return EX_USAGE
        try:
            response: Response = ask(request, self.socket, timeout=self.timeout)
        except ControlError as error:
            self.say(f"the handset daemon does not answer: {error}")
            self._say_config_problems()
            return EX_UNAVAILABLE
        if not response.ok:
            self.say(f"{invocation.name}: {view.printable(response.error)}")
            return 1
        result = response.result or {}
        if invocation.json:
            self.say(json.dumps(result, indent=2, sort_keys=True))
        elif invocation.name == "log":
            self.say(view.format_log(result, invocation.count))
        else:
            self.say(COMMANDS[invocation.name].show(result))
        return 0

    def banner(self) -> None:
        try:
            response = ask(Request.make("status"), self.socket, timeout=5.0)
        except ControlError as error:
            self.say(f"handset diagnostics; the daemon does not answer: {error}")
            self._say_config_problems()
        else:
            line = view.one_line(response.result) if response.ok else response.error
            self.say(f"handset diagnostics: {view.printable(line)}")
        self.say("type help for the commands, exit or Ctrl-D to leave")

    def _say_config_problems(self) -> None:
        """A daemon that is down most often refused its config: check the file as it would."""
        from firmware import config  # only needed when the daemon is down

        path = config.config_path()
        try:
            config.load(path)
        except config.ConfigError as error:
            self.say(f"the handset's config {path} stops it from starting:")
            for problem in error.problems:
                self.say(f"  {view.printable(problem)}")
        else:
            self.say(f"the config {path} is valid; see the service's journal for why it is down")

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def interactive(shell: DiagShell, fd_in: int, fd_out: int) -> int:
    """The prompt loop on a terminal, or line by line from a pipe; 0 at exit or end of input."""
    # Ctrl-C interrupts a waiting command even when the shell was started with SIGINT ignored
    # (as a background job of a non-interactive shell is)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)  # nobody could resume a suspended login shell
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    on_terminal = os.isatty(fd_in)
    editor = LineEditor(fd_in, fd_out, complete, max_length=MAX_LINE)
    stdin = os.fdopen(os.dup(fd_in), "rb", buffering=0) if not on_terminal else None
    if on_terminal:
        shell.banner()
    while True:
        try:
            if on_terminal:
                line = editor.read_line(PROMPT)
            else:
                assert stdin is not None
                line = read_plain_line(stdin, MAX_LINE)
            if shell.run_line(line) is None:
                shell.say("bye")
                return 0
        except LineTooLong as error:
            shell.say(f"{error}; nothing was run (commands are short: type help)")
        except KeyboardInterrupt:
            shell.say("interrupted (exit or Ctrl-D leaves the shell)")
        except EOFError:
            if on_terminal:
                shell.say("bye")
            return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", help="the daemon's control socket (default: the system one)")
    parser.add_argument("-c", dest="one_command", help="run one command and exit")


def run(args: argparse.Namespace) -> int:
    shell = DiagShell(socket_path(args.socket), sys.stdout)
    if args.one_command is not None:
        return one_command(shell, args.one_command)
    return interactive(shell, sys.stdin.fileno(), sys.stdout.fileno())


def one_command(shell: DiagShell, line: str) -> int:
    if len(line) > MAX_LINE:
        shell.say(str(LineTooLong(len(line), MAX_LINE)))
        return EX_USAGE
    status = shell.run_line(line)
    return 0 if status is None else status


def login(argv: list[str] | None = None) -> int:
    """The `diag` user's login shell: `handset-shell`, or `handset-shell -c COMMAND` from sshd."""
    argv = sys.argv[1:] if argv is None else argv
    shell = DiagShell(socket_path(None), sys.stdout)
    if not argv:
        return interactive(shell, sys.stdin.fileno(), sys.stdout.fileno())
    if argv[0] != "-c" or len(argv) != 2:
        shell.say("usage: handset-shell [-c COMMAND]")
        return EX_USAGE
    command = os.environ.get("SSH_ORIGINAL_COMMAND", argv[1])
    if Path(command.strip()).name in ("", LOGIN_SHELL):  # the ForceCommand itself
        return interactive(shell, sys.stdin.fileno(), sys.stdout.fileno())
    return one_command(shell, command)
