"""A small line editor for the diagnostics shell: history, tab completion, a length limit.

Not GNU readline: the diagnostics shell is a login shell that faces anyone holding a key, so
its input path is short enough to read in one sitting. It reads no init file (readline reads
~/.inputrc and $INPUTRC), keeps history in memory only (no file is ever written), and refuses a
line longer than `max_length` without buffering it (readline takes seconds to redraw a 1 MB
paste). The terminal is in raw mode only while a line is being read, so Ctrl-C during a command
is an ordinary SIGINT.

Keys: printable characters insert; Enter submits; Backspace, Delete, Left/Right, Home/End
(Ctrl-A/Ctrl-E), Ctrl-K/Ctrl-U/Ctrl-W cut, Ctrl-L redraws; Up/Down walk the history; Tab
completes; Ctrl-C abandons the line (KeyboardInterrupt); Ctrl-D on an empty line is EOFError.
Other control characters and escape sequences are ignored.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

BELL = "\a"
ESC, CSI_START = 0x1B, (ord("["), ord("O"))
STRING_START = (ord("]"), ord("P"), ord("_"), ord("^"))


class LineTooLong(Exception):
    """The line was longer than the editor takes; it was thrown away."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"line of {length} characters is over the {limit}-character limit")
        self.length = length
        self.limit = limit


Completer = Callable[[str], list[str]]
"""Given the text before the cursor, the possible full words for the word being typed."""


@dataclass
class _Edit:
    text: list[str] = field(default_factory=list)
    cursor: int = 0
    dropped: int = 0  # characters refused for the length limit
    history_index: int = 0
    draft: str = ""  # the line being typed, kept while walking the history


class LineEditor:
    def __init__(
        self,
        fd_in: int,
        fd_out: int,
        complete: Completer,
        max_length: int = 256,
        history_size: int = 200,
    ) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.complete = complete
        self.max_length = max_length
        self.history_size = history_size
        self.history: list[str] = []

    def read_line(self, prompt: str) -> str:
        saved = termios.tcgetattr(self.fd_in)
        raw = termios.tcgetattr(self.fd_in)
        raw[0] &= ~(termios.IXON | termios.ICRNL | termios.INLCR)
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd_in, termios.TCSADRAIN, raw)
        try:
            return self._read(prompt)
        finally:
            termios.tcsetattr(self.fd_in, termios.TCSADRAIN, saved)

    def _read(self, prompt: str) -> str:
        edit = _Edit(history_index=len(self.history))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        escape: list[int] = []  # an escape sequence being read
        self._write(prompt)
        while True:
            chunk = os.read(self.fd_in, 4096)
            if not chunk:
                self._write("\n")
                raise EOFError
            for byte in chunk:
                if escape or byte == ESC:
                    escape.append(byte)
                    if _escape_complete(escape):
                        self._escape(edit, bytes(escape))
                        escape.clear()
                    continue
                line = self._key(edit, byte, decoder, prompt)
                if line is not None:
                    return line
            self._redraw(prompt, edit)

    def _key(self, edit: _Edit, byte: int, decoder, prompt: str) -> str | None:
        """Apply one byte; the finished line when it was Enter."""
        if byte in (0x0D, 0x0A):
            self._redraw(prompt, edit)  # a pasted line shows before its output
            self._write("\n")
            if edit.dropped:
                raise LineTooLong(len(edit.text) + edit.dropped, self.max_length)
            line = "".join(edit.text)
            if line.strip() and (not self.history or self.history[-1] != line):
                self.history = [*self.history, line][-self.history_size :]
            return line
        if byte == 0x03:  # Ctrl-C
            self._redraw(prompt, edit)
            self._write("^C\n")
            raise KeyboardInterrupt
        if byte == 0x04:  # Ctrl-D
            if not edit.text:
                self._write("\n")
                raise EOFError
            del edit.text[edit.cursor : edit.cursor + 1]
        elif byte in (0x7F, 0x08):
            if edit.cursor:
                edit.cursor -= 1
                del edit.text[edit.cursor]
        elif byte == 0x09:
            self._complete(edit, prompt)
        elif byte == 0x01:
            edit.cursor = 0
        elif byte == 0x05:
            edit.cursor = len(edit.text)
        elif byte == 0x02:
            edit.cursor = max(0, edit.cursor - 1)
        elif byte == 0x06:
            edit.cursor = min(len(edit.text), edit.cursor + 1)
        elif byte == 0x0B:
            del edit.text[edit.cursor :]
        elif byte == 0x15:
            del edit.text[: edit.cursor]
            edit.cursor = 0
            edit.dropped = 0
        elif byte == 0x17:
            start = edit.cursor
            while start and edit.text[start - 1] == " ":
                start -= 1
            while start and edit.text[start - 1] != " ":
                start -= 1
            del edit.text[start : edit.cursor]
            edit.cursor = start
        elif byte == 0x0C:
            self._write("\x1b[H\x1b[2J")
        elif byte < 0x20:
            pass  # other control characters do nothing
        else:
            self._insert(edit, decoder.decode(bytes([byte])))
        return None

    def _insert(self, edit: _Edit, text: str) -> None:
        for char in text:
            if len(edit.text) >= self.max_length:
                if not edit.dropped:
                    self._write(BELL)
                edit.dropped += 1
                continue
            edit.text.insert(edit.cursor, char)
            edit.cursor += 1

    def _escape(self, edit: _Edit, sequence: bytes) -> None:
        final = sequence[-1:]
        if final == b"A" or final == b"B":
            self._walk_history(edit, -1 if final == b"A" else 1)
        elif final == b"C":
            edit.cursor = min(len(edit.text), edit.cursor + 1)
        elif final == b"D":
            edit.cursor = max(0, edit.cursor - 1)
        elif final == b"H" or sequence in (b"\x1b[1~", b"\x1b[7~"):
            edit.cursor = 0
        elif final == b"F" or sequence in (b"\x1b[4~", b"\x1b[8~"):
            edit.cursor = len(edit.text)
        elif sequence == b"\x1b[3~":
            del edit.text[edit.cursor : edit.cursor + 1]

    def _walk_history(self, edit: _Edit, step: int) -> None:
        target = edit.history_index + step
        if not 0 <= target <= len(self.history):
            return
        if edit.history_index == len(self.history):
            edit.draft = "".join(edit.text)
        edit.history_index = target
        line = self.history[target] if target < len(self.history) else edit.draft
        edit.text = list(line)
        edit.cursor = len(edit.text)
        edit.dropped = 0

    def _complete(self, edit: _Edit, prompt: str) -> None:
        before = "".join(edit.text[: edit.cursor])
        word_start = before.rfind(" ") + 1
        word = before[word_start:]
        candidates = sorted(set(self.complete(before)))
        if not candidates:
            self._write(BELL)
            return
        common = _common_prefix(candidates)
        addition = common[len(word) :] + (" " if len(candidates) == 1 else "")
        if addition:
            self._insert(edit, addition)
            return
        self._write("\n" + "  ".join(candidates) + "\n")

    def _redraw(self, prompt: str, edit: _Edit) -> None:
        """One physical line: the prompt and a window of the text around the cursor."""
        width = max(10, self._columns() - len(prompt) - 1)
        start = max(0, edit.cursor - width + 1)
        shown = "".join(edit.text[start : start + width])
        back = len(shown) - (edit.cursor - start)
        self._write(f"\r{prompt}{shown}\x1b[K" + (f"\x1b[{back}D" if back > 0 else ""))

    def _columns(self) -> int:
        try:
            packed = fcntl.ioctl(self.fd_out, termios.TIOCGWINSZ, b"\0" * 8)
            columns = struct.unpack("HHHH", packed)[1]
        except OSError:
            columns = 0
        return columns or 80

    def _write(self, text: str) -> None:
        data = text.encode()
        while data:
            data = data[os.write(self.fd_out, data) :]


def _escape_complete(sequence: list[int]) -> bool:
    """ESC [ params final, ESC O final, a string sequence (ESC ] ... BEL), or ESC and one other
    byte (Alt-key)."""
    if len(sequence) < 2:
        return False
    if sequence[1] in STRING_START:  # OSC, DCS...: up to BEL or ESC \\
        return sequence[-1] == 0x07 or sequence[-2:] == [ESC, ord("\\")] or len(sequence) > 512
    if sequence[1] not in CSI_START:
        return True
    return (len(sequence) > 2 and 0x40 <= sequence[-1] <= 0x7E) or len(sequence) > 16


def _common_prefix(words: list[str]) -> str:
    shortest = min(words, key=len)
    for index, char in enumerate(shortest):
        if any(word[index] != char for word in words):
            return shortest[:index]
    return shortest


def read_plain_line(stream, max_length: int = 256) -> str:
    """One line from a pipe (no terminal: `ssh -T`, a script): same limit, no editing."""
    data = stream.readline(max_length + 2)
    if not data:
        raise EOFError
    if len(data) > max_length + 1:
        length = len(data)
        while data and not data.endswith(b"\n"):
            data = stream.readline(65536)
            length += len(data)
        raise LineTooLong(length, max_length)
    return data.decode(errors="replace").rstrip("\r\n")
