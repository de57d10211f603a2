"""The config file: every kind of mistake names file, line, key and the fix; `handset daemon`
stops with status 78 on it and writes nothing (no keyring, no state directory, no socket)."""

from __future__ import annotations

import subprocess
import sys
import wave
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from firmware.config import EX_CONFIG, ConfigError, parse

HANDSET = str(Path(sys.executable).parent / "handset")

GOOD = """\
[handset]
number = "5551234"
name = "Kim"
state_dir = "{state}"

[mesh]
mode = "unmanaged"
interface = "eth0"

[audio]
backend = "fake"

[speed_dial]
"1" = "5554321"

[control]
socket = "{state}/control.sock"
"""


def config_text(tmp_path: Path, **replace: str) -> str:
    text = GOOD.format(state=tmp_path / "state")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(text, tmp_path / "handset.toml")
    return raised.value.problems


def test_a_good_file_gives_every_setting(tmp_path):
    config = parse(config_text(tmp_path), tmp_path / "handset.toml")
    assert (config.handset.number, config.handset.name) == ("5551234", "Kim")
    assert config.mesh.mode == "unmanaged" and config.mesh.interface == "eth0"
    assert config.audio.backend == "fake"
    assert config.speed_dial == {"1": "5554321"}
    assert config.keyring_path == tmp_path / "state" / "keyring"


def test_managed_mesh_keys_reach_the_mesh_config(tmp_path):
    text = config_text(tmp_path).replace(
        'mode = "unmanaged"\ninterface = "eth0"',
        'mode = "managed"\ninterface = "wlan1"\nssid = "village"\nfrequency = 2437\n'
        'prefix = "10.50.0.0/16"\norig_interval_ms = 500',
    )
    mesh = parse(text, tmp_path / "h.toml").mesh
    assert (mesh.mode, mesh.radio, mesh.ssid, mesh.freq_mhz) == ("ibss", "wlan1", "village", 2437)
    assert (mesh.prefix, mesh.orig_interval_ms) == (IPv4Network("10.50.0.0/16"), 500)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unknown key
        (
            'name = "Kim"',
            'name = "Kim"\nnmuber = "1"',
            ":4: [handset] nmuber: unknown key; fix: use one of",
        ),
        # unknown section
        ("[speed_dial]", "[speeddial]", ":13: [speeddial]: unknown section; fix: use one of"),
        # wrong type
        (
            'backend = "fake"',
            "backend = 3",
            ':11: [audio] backend: 3 is not allowed; fix: use one of "alsa", "file", "fake"',
        ),
        (
            'number = "5551234"',
            "number = 5551234",
            ':2: [handset] number: 5551234 is not a string; fix: put it in quotes: "5551234"',
        ),
        (
            'name = "Kim"',
            'name = "Kim"\nauto_answer = "yes"',
            ":4: [handset] auto_answer: 'yes' is not true or false; fix: write true or false",
        ),
        # bad value
        (
            'number = "5551234"',
            'number = "555-1234"',
            ":2: [handset] number: '555-1234' is not a phone number; fix: use 5-31 of 0-9 * # +",
        ),
        (
            'mode = "unmanaged"',
            'mode = "adhoc"',
            ':7: [mesh] mode: \'adhoc\' is not a mode; fix: use "managed" or "unmanaged"',
        ),
        (
            'interface = "eth0"',
            'interface = "eth0"\nfrequency = 99',
            ":9: [mesh] frequency: 99 is invalid; fix: e.g. 2412 (channel 1)",
        ),
        (
            'interface = "eth0"',
            'interface = "eth0"\nprefix = "10.1.2.3/16"',
            ":9: [mesh] prefix: '10.1.2.3/16' is not an IPv4 network",
        ),
        (
            '"1" = "5554321"',
            '"12" = "5554321"',
            ':14: [speed_dial] 12: not a single digit; fix: write "1" = "5551234"',
        ),
        (
            'backend = "fake"',
            'backend = "file"\ninput = "/nonexistent/mic.wav"',
            ":12: [audio] input: /nonexistent/mic.wav does not exist; fix: a 16 kHz mono",
        ),
        (
            'socket = "',
            'group = "no-such-group-hs"\nsocket = "',
            ":17: [control] group: no group 'no-such-group-hs' on this system",
        ),
        # not TOML at all
        ('name = "Kim"', "name = Kim", ":3: not valid TOML: "),
    ],
)
def test_each_mistake_names_file_line_key_and_fix(tmp_path, old, new, expected):
    [problem] = problems(tmp_path, config_text(tmp_path, **{old: new}))
    assert problem.startswith(str(tmp_path / "handset.toml") + ":")
    assert expected in problem, problem


def test_a_missing_number_says_what_to_add(tmp_path):
    [problem] = problems(tmp_path, config_text(tmp_path, **{'number = "5551234"\n': ""}))
    assert '[handset] number: missing; fix: add number = "5551234"' in problem


def test_all_problems_are_reported_at_once(tmp_path):
    text = config_text(
        tmp_path, **{'name = "Kim"': "name = 1", 'backend = "fake"': 'backend = "x"'}
    )
    assert len(problems(tmp_path, text)) == 2


def test_a_wav_in_the_wrong_format_is_refused_with_the_fix(tmp_path):
    wav_path = tmp_path / "mic.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        wav.writeframes(bytes(400))
    text = config_text(tmp_path, **{'backend = "fake"': f'backend = "file"\ninput = "{wav_path}"'})
    [problem] = problems(tmp_path, text)
    assert "44100 Hz, 2 channel(s), 16-bit; fix: a 16 kHz mono 16-bit WAV" in problem


@pytest.mark.parametrize(
    "mistake",
    [
        {'name = "Kim"': 'name = "Kim"\ncolour = "red"'},  # unknown key
        {'number = "5551234"': "number = 5551234"},  # wrong type
        {'backend = "fake"': 'backend = "pulse"'},  # bad value
        {"[mesh]": "[mesh"},  # not TOML
    ],
)
def test_the_daemon_stops_with_78_and_writes_nothing(tmp_path, mistake):
    path = tmp_path / "handset.toml"
    path.write_text(config_text(tmp_path, **mistake))
    result = subprocess.run(
        [HANDSET, "daemon", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == EX_CONFIG
    assert result.stderr.startswith(f"{path}:"), result.stderr
    assert "fix:" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handset.toml"]


def test_a_missing_config_file_is_a_config_error_too(tmp_path):
    result = subprocess.run(
        [HANDSET, "daemon", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EX_CONFIG
    assert "no such file; fix: create it" in result.stderr


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path):
    text = config_text(tmp_path).replace(f'state_dir = "{tmp_path / "state"}"', 'state_dir = "s"')
    config = parse(text, tmp_path / "etc" / "handset.toml")
    assert config.handset.state_dir == tmp_path / "etc" / "s"


def test_the_example_configs_in_the_repository_are_valid():
    repo = Path(__file__).resolve().parent.parent
    for example in sorted((repo / "examples").glob("*.toml")):
        parse(example.read_text(), example)
