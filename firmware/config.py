"""The handset's one configuration file (TOML), checked completely before anything starts.

Why total: the file is written by hand (on the SD card's boot partition, on a laptop), and a
handset that starts half-configured fails later in a way nobody can connect to the typo. So
every key is known, every value's type and range is checked (a relative path is taken from the
file's own folder), and each problem is reported as
`FILE:LINE: [section] key: what is wrong; fix: what to write`; all problems at once, before
the daemon writes or binds anything. The accepted keys come from the settings dataclasses
below (and, for [mesh], from `hw.mesh.config.MeshConfig`), so a field added there is a key here.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import re
import tomllib
import types
import typing
import wave
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Literal

from firmware.control_protocol import DEFAULT_SOCKET
from hw.mesh.config import MeshConfig, MeshConfigError
from vomp.codecs import Codec
from vomp.dna import is_valid_did

CODECS = {"opus_redundant": Codec.OPUS_REDUNDANT, "opus": Codec.OPUS, "mulaw": Codec.MULAW}
"""The codecs a handset can offer, by their config names."""
EX_CONFIG = 78
"""sysexits.h: configuration error. systemd does not restart a unit on it in a loop."""

AUDIO_RATE = 16000
CONFIG_ENV = "HANDSET_CONFIG"
DEFAULT_CONFIG = Path("/boot/firmware/handset.toml")


def config_path(given: str | os.PathLike[str] | None = None) -> Path:
    """The handset's config file: `given`, else $HANDSET_CONFIG, else the SD card's."""
    if given:
        return Path(given)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


class ConfigError(Exception):
    """One or more problems in the file; `str()` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HandsetSettings:
    number: str = ""
    name: str = ""
    state_dir: Path = Path("/var/lib/handset")
    auto_answer: bool = False
    port: int = 4110
    """UDP port; servald and every handset use 4110, another port only suits tests."""


@dataclass(frozen=True)
class AudioSettings:
    backend: Literal["alsa", "file", "fake"] = "alsa"
    capture: str = "plughw:CARD=Device"
    playback: str = "plughw:CARD=Device"
    input: Path | None = None
    """`file`: a 16 kHz mono 16-bit WAV played, looped, as the microphone."""
    output: Path | None = None
    """`file`: where what the handset plays (the far end, tones) is written as a WAV."""
    period_ms: int = 10
    """10 ms, or 5 for about 5 ms less mouth-to-ear (40 ms against 45) where the machine
    meets every period (bench/xrun_bench.py); a card that cannot do 5 ms periods runs at 10."""
    prefill_periods: int = 2
    """Silence queued ahead of the card: the playback cushion against scheduling jitter."""
    codecs: tuple[str, ...] = ("opus_redundant", "opus", "mulaw")
    """What this handset offers; without opus_redundant it sends as servald does."""
    realtime_priority: int = 60
    """SCHED_FIFO priority of the call path (the engine runs 10 above); 0: normal."""


@dataclass(frozen=True)
class KeypadSettings:
    backend: Literal["rpi-gpio", "recording", "none"] = "none"
    rows: tuple[int, ...] = ()
    columns: tuple[int, ...] = ()
    layout: Literal["4x3", "4x4"] = "4x3"
    hook: int | None = None
    hook_lifted: Literal["low", "high"] = "low"
    """The hook input's level while the handset is lifted (a contact to ground: low)."""
    ringer: int | None = None
    led: int | None = None
    scan_settle_ms: int = 0
    """How long a row is driven before its columns are read: 0 for wires; a simulated keypad
    (gpio-sim on the VM bench) needs tens of ms."""


@dataclass(frozen=True)
class ControlSettings:
    socket: Path = DEFAULT_SOCKET
    group: str | None = None


@dataclass(frozen=True)
class DiagSettings:
    authorized_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemSettings:
    hostname: str | None = None
    wifi_country: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    handset: HandsetSettings
    mesh: MeshConfig
    audio: AudioSettings = field(default_factory=AudioSettings)
    keypad: KeypadSettings = field(default_factory=KeypadSettings)
    speed_dial: dict[str, str] = field(default_factory=dict)
    control: ControlSettings = field(default_factory=ControlSettings)
    diag: DiagSettings = field(default_factory=DiagSettings)
    system: SystemSettings = field(default_factory=SystemSettings)

    @property
    def keyring_path(self) -> Path:
        return self.handset.state_dir / "keyring"


SECTIONS: dict[str, type] = {
    "handset": HandsetSettings,
    "mesh": MeshConfig,
    "audio": AudioSettings,
    "keypad": KeypadSettings,
    "control": ControlSettings,
    "diag": DiagSettings,
    "system": SystemSettings,
}
MESH_MODES = {"managed": "ibss", "unmanaged": "unmanaged"}
MESH_RENAMED = {"frequency": "freq_mhz"}
"""Config keys spelt for people, and the MeshConfig field each one sets."""
MESH_HIDDEN = {"freq_mhz", "netns"}
"""MeshConfig fields that are not config keys: spelt otherwise, or only for the bench."""


def load(path: Path) -> Config:
    """Read and check `path`; raises ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file; fix: create it (see handset.example.toml in the repository)"]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read it ({error}); fix: a UTF-8 text file"]) from None
    return parse(text, path)


def parse(text: str, path: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"at line (\d+)", str(error))
        where = f"{path}:{line.group(1)}" if line else str(path)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(
            [f"{where}: not valid TOML: {reason}; fix: write key = value, strings in quotes"]
        ) from None
    checker = _Checker(path, _key_lines(text))
    config = checker.config(raw)
    if checker.problems:
        raise ConfigError(checker.problems)
    assert config is not None
    return config


class _Bad(Exception):
    """One value is wrong: `problem` and `fix` go into the message."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


class _Checker:
    def __init__(self, path: Path, lines: dict[tuple[str, ...], int]) -> None:
        self.path = path
        self.base = path.absolute().parent
        """Relative paths in the file are relative to the file's own folder."""
        self.lines = lines
        self.problems: list[str] = []

    def report(self, section: str, key: str | None, problem: str, fix: str) -> None:
        line = self.lines.get((section, key) if key else (section,)) or self.lines.get((section,))
        where = f"{self.path}:{line}" if line else str(self.path)
        name = f"[{section}] {key}" if key else f"[{section}]"
        self.problems.append(f"{where}: {name}: {problem}; fix: {fix}")

    def config(self, raw: dict[str, Any]) -> Config | None:
        for name in raw:
            if name not in SECTIONS and name != "speed_dial":
                self.report(
                    name,
                    None,
                    "unknown section",
                    f"use one of {', '.join(f'[{s}]' for s in [*SECTIONS, 'speed_dial'])}",
                )
        tables = {}
        for name in [*SECTIONS, "speed_dial"]:
            table = raw.get(name, {})
            if not isinstance(table, dict):
                self.report(name, None, "is a value, not a section", f"write [{name}] on a line")
                table = {}
            tables[name] = table
        handset = self.settings("handset", HandsetSettings, tables["handset"], _check_handset)
        audio = self.settings("audio", AudioSettings, tables["audio"], _check_audio)
        keypad = self.settings("keypad", KeypadSettings, tables["keypad"], _check_keypad)
        control = self.settings("control", ControlSettings, tables["control"], _check_control)
        diag = self.settings("diag", DiagSettings, tables["diag"], _check_diag)
        system = self.settings("system", SystemSettings, tables["system"], _check_system)
        mesh = self.mesh(tables["mesh"])
        speed_dial = self.speed_dial(tables["speed_dial"])
        if handset is not None and not handset.number and "number" not in tables["handset"]:
            self.report(
                "handset", "number", "missing", 'add number = "5551234" (5-31 of 0-9 * # +)'
            )
        if (
            self.problems
            or handset is None
            or mesh is None
            or audio is None
            or keypad is None
            or control is None
            or diag is None
            or system is None
        ):
            return None
        return Config(self.path, handset, mesh, audio, keypad, speed_dial, control, diag, system)

    def settings(
        self, section: str, cls: type, table: dict[str, Any], check: Any = None
    ) -> Any | None:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        ok = True
        for key, value in table.items():
            if key not in known:
                self.report(section, key, "unknown key", f"use one of {', '.join(sorted(known))}")
                ok = False
                continue
            try:
                values[key] = _coerce(value, hints[key])
            except _Bad as bad:
                self.report(section, key, bad.problem, bad.fix)
                ok = False
                continue
            if isinstance(values[key], Path):
                values[key] = self.base / values[key]  # an absolute path stays as it is
        if not ok:
            return None
        settings = cls(**values)
        if check is not None:
            for key, problem, fix in check(settings, table):
                self.report(section, key, problem, fix)
                ok = False
        return settings if ok else None

    def mesh(self, table: dict[str, Any]) -> MeshConfig | None:
        hints = typing.get_type_hints(MeshConfig)
        fields = {f.name for f in dataclasses.fields(MeshConfig)} - MESH_HIDDEN
        known = fields | set(MESH_RENAMED)
        values: dict[str, Any] = {}
        ok = True
        mode = table.get("mode", "managed")
        if mode not in MESH_MODES:
            self.report("mesh", "mode", f"{mode!r} is not a mode", 'use "managed" or "unmanaged"')
            return None
        for key, value in table.items():
            if key == "mode":
                values["mode"] = MESH_MODES[mode]
                continue
            if key not in known:
                self.report("mesh", key, "unknown key", f"use one of {', '.join(sorted(known))}")
                ok = False
                continue
            target = MESH_RENAMED.get(key, key)
            if key == "interface" and mode == "managed":
                target = "radio"  # managed: the Wi-Fi interface that becomes the mesh
                if "radio" in table:
                    self.report(
                        "mesh", key, "given with radio", "keep one: interface is the radio here"
                    )
                    ok = False
            try:
                values[target] = _coerce(value, hints[target])
            except _Bad as bad:
                self.report("mesh", key, bad.problem, bad.fix)
                ok = False
        if not ok:
            return None
        try:
            return MeshConfig(**values)
        except MeshConfigError as error:
            named = re.match(r"mesh setting (\w+)=(.*?) is invalid: (.*)", str(error))
            if named:
                key = {v: k for k, v in MESH_RENAMED.items()}.get(named[1], named[1])
                self.report("mesh", key, f"{named[2]} is invalid", named[3])
            else:
                self.report("mesh", None, str(error), "see hw/mesh/config.py")
            return None

    def speed_dial(self, table: dict[str, Any]) -> dict[str, str]:
        dials = {}
        for key, value in table.items():
            if not re.fullmatch(r"[0-9]", key):
                self.report("speed_dial", key, "not a single digit", 'write "1" = "5551234"')
            elif not isinstance(value, str) or not is_valid_did(value):
                self.report(
                    "speed_dial", key, f"{value!r} is not a number", "use 5-31 of 0-9 * # +, quoted"
                )
            else:
                dials[key] = value
        return dials


def _coerce(value: Any, hint: Any) -> Any:
    """`value` as TOML gave it, checked against the dataclass field's annotation."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(value, inner)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise _Bad(f"{value!r} is not allowed", f"use one of {_quoted(choices)}")
        return value
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise _Bad(f"{value!r} is not a list", f"write [{_example(inner)}, ...]")
        return tuple(_coerce(item, inner) for item in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Bad(f"{value!r} is not true or false", "write true or false (no quotes)")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(f"{value!r} is not a whole number", "write a number without quotes")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Bad(f"{value!r} is not a number", "write a number without quotes")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Bad(f"{value!r} is not a string", f'put it in quotes: "{value}"')
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise _Bad(f"{value!r} is not a path", 'write a path in quotes, e.g. "/var/lib/x"')
        return Path(value)
    if hint is IPv4Network:
        try:
            return IPv4Network(str(value), strict=True)
        except ValueError as error:
            raise _Bad(
                f"{value!r} is not an IPv4 network ({error})", 'e.g. "10.42.0.0/16"'
            ) from None
    raise _Bad(f"cannot check a {hint}", "report this as a bug")


def _example(hint: Any) -> str:
    return "17" if hint is int else '"text"'


def _quoted(choices: tuple[Any, ...]) -> str:
    return ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in choices)


Problems = list[tuple[str, str, str]]


def _check_handset(s: HandsetSettings, table: dict[str, Any]) -> Problems:
    problems = []
    if "number" in table and not is_valid_did(s.number):
        problems.append(("number", f"{s.number!r} is not a phone number", "use 5-31 of 0-9 * # +"))
    if any(c in s.name for c in "\t\r\n"):
        problems.append(("name", "contains a tab or line break", "use one line, spaces only"))
    if not 1 <= s.port <= 65535:
        problems.append(("port", f"{s.port} is not a UDP port", "use 4110"))
    return problems


def _check_audio(s: AudioSettings, table: dict[str, Any]) -> Problems:
    problems: Problems = []
    for key in ("input", "output"):
        if key in table and s.backend != "file":
            problems.append((key, f"only used by the file backend, not {s.backend!r}", "remove"))
    if s.input is not None and s.backend == "file":
        problem = _wav_problem(s.input)
        if problem:
            problems.append(
                ("input", problem, "a 16 kHz mono 16-bit WAV (sox IN -r 16000 -c 1 -b 16 OUT)")
            )
    if s.period_ms not in (5, 10):
        problems.append(("period_ms", f"{s.period_ms} ms", "use 10 (or 5)"))
    if not 1 <= s.prefill_periods <= 3:
        problems.append(("prefill_periods", f"{s.prefill_periods}", "use 2 (1 to 3)"))
    unknown = [name for name in s.codecs if name not in CODECS]
    if unknown or not s.codecs:
        problems.append(("codecs", f"{list(s.codecs)}", f"a list of {', '.join(CODECS)}"))
    if not 0 <= s.realtime_priority <= 89:
        problems.append(("realtime_priority", f"{s.realtime_priority}", "use 0-89, e.g. 60"))
    return problems


def _wav_problem(path: Path) -> str | None:
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, EOFError, wave.Error) as error:
        return f"{path} is not a readable WAV ({error})"
    if shape != (AUDIO_RATE, 1, 2):
        return f"{path} is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit"
    return None


def _check_keypad(s: KeypadSettings, table: dict[str, Any]) -> Problems:
    problems = []
    pins = [*s.rows, *s.columns, *(p for p in (s.hook, s.ringer, s.led) if p is not None)]
    for pin in pins:
        if not 0 <= pin <= 27:
            problems.append(("rows", f"pin {pin} is not a BCM GPIO", "use BCM numbers 0-27"))
            break
    if len(set(pins)) != len(pins):
        problems.append(
            ("rows", "a pin is used twice", "give every row, column and output its own pin")
        )
    if not 0 <= s.scan_settle_ms <= 100:
        problems.append(("scan_settle_ms", f"{s.scan_settle_ms} ms", "use 0 (50 for gpio-sim)"))
    if s.backend != "none" and s.rows:
        want = 4 if s.layout == "4x4" else 3
        if len(s.rows) != 4:
            problems.append(("rows", f"{len(s.rows)} rows", "a 4x3 or 4x4 keypad has 4 rows"))
        if len(s.columns) != want:
            problems.append(
                ("columns", f"{len(s.columns)} columns", f"layout {s.layout} has {want}")
            )
    return problems


def _check_control(s: ControlSettings, table: dict[str, Any]) -> Problems:
    if s.group is not None:
        try:
            grp.getgrnam(s.group)
        except KeyError:
            return [
                ("group", f"no group {s.group!r} on this system", "create it or remove the key")
            ]
    return []


def _check_diag(s: DiagSettings, table: dict[str, Any]) -> Problems:
    for key in s.authorized_keys:
        if not re.match(r"(ssh-|ecdsa-|sk-)\S+ \S+", key):
            return [
                (
                    "authorized_keys",
                    f"{key[:30]!r} is not a public key",
                    "paste a line of id_ed25519.pub",
                )
            ]
    return []


def _check_system(s: SystemSettings, table: dict[str, Any]) -> Problems:
    problems = []
    if s.hostname is not None and not re.fullmatch(
        r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", s.hostname
    ):
        problems.append(("hostname", f"{s.hostname!r}", "use a-z, 0-9 and -, up to 63"))
    if s.wifi_country is not None and not re.fullmatch(r"[A-Z]{2}", s.wifi_country):
        problems.append(("wifi_country", f"{s.wifi_country!r}", 'two capital letters, e.g. "DE"'))
    return problems


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_\-\"]+)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each `[section]` and `key =` is, for messages (tomllib keeps no positions)."""
    found: dict[tuple[str, ...], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            section = header[1].strip('"')
            found.setdefault((section,), number)
        elif key := _KEY.match(line):
            found.setdefault((section, key[1].strip("\"'")), number)
    return found
