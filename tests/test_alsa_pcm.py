"""The real backend through real pyalsaaudio, on ALSA's file and null plugins (not paced).

The `file` plugin hands capture the raw bytes of a file and appends playback to another, so
the bytes in and out are exact; it runs as fast as it is called, which keeps these fast.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path

import pytest

from hw.soundcard.alsa_pcm import AlsaBackend
from hw.soundcard.device_loop import DeviceLoop
from hw.soundcard.devices import DeviceGoneError, DeviceMismatchError, PcmSettings
from lab.virtual_audio import alsa_config_path, file_card_conf

PERIOD_FRAMES = 160
PERIOD_BYTES = PERIOD_FRAMES * 2


def ramp_periods(n: int) -> bytes:
    """n periods whose samples count up, so any lost, doubled or shifted byte shows."""
    return array("h", [i % 30000 for i in range(n * PERIOD_FRAMES)]).tobytes()


@pytest.fixture
def file_card(tmp_path: Path, monkeypatch):
    infile, outfile = tmp_path / "in.raw", tmp_path / "out.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(
        file_card_conf("testcard", infile, outfile)
        + 'pcm.ulawcard { type mulaw slave { pcm "null" format S16_LE } }\n'
    )
    monkeypatch.setenv("ALSA_CONFIG_PATH", alsa_config_path(conf))
    return infile, outfile


def settings(**changes) -> PcmSettings:
    return PcmSettings(capture_device="testcard_in", playback_device="testcard_out", **changes)


def test_capture_returns_the_devices_bytes_period_by_period(file_card):
    infile, _ = file_card
    infile.write_bytes(ramp_periods(8))
    capture = AlsaBackend().open_capture(settings())
    try:
        got = b"".join(capture.read() for _ in range(8))
    finally:
        capture.close()
    assert got == ramp_periods(8)


def test_playback_writes_exactly_the_periods_given(file_card):
    _, outfile = file_card
    playback = AlsaBackend().open_playback(settings())
    for i in range(4):
        assert playback.write(ramp_periods(5)[i * PERIOD_BYTES : (i + 1) * PERIOD_BYTES]) is None
    playback.close()
    assert outfile.read_bytes() == ramp_periods(4)


def test_device_loop_moves_audio_through_real_alsa_both_ways(file_card):
    infile, outfile = file_card
    infile.write_bytes(ramp_periods(6))
    backend, pcm = AlsaBackend(), settings()
    capture, playback = backend.open_capture(pcm), backend.open_playback(pcm)
    delivered: list[bytes] = []
    to_play = [ramp_periods(6)]
    loop = DeviceLoop(
        capture,
        playback,
        pcm,
        lambda d: delivered.append(d) or True,
        lambda: to_play.pop() if to_play else b"",
        lambda: 0,
    )
    loop.prime()
    for _ in range(6):
        loop.run_period()
    capture.close()
    playback.close()
    assert b"".join(delivered) == ramp_periods(6)
    prefill = bytes(pcm.playback_prefill_periods * PERIOD_BYTES)
    # the queue limit (2 periods) trimmed the burst's four oldest periods, and the last four
    # periods had nothing left to play
    silence = bytes(4 * PERIOD_BYTES)
    assert outfile.read_bytes() == prefill + ramp_periods(6)[4 * PERIOD_BYTES :] + silence
    assert loop.counters.playback_trimmed == 4
    assert loop.counters.capture_xruns == loop.counters.playback_xruns == 0


def test_a_device_that_grants_another_format_is_refused_with_the_fix(file_card):
    pcm = PcmSettings(capture_device="ulawcard", playback_device="ulawcard")
    with pytest.raises(DeviceMismatchError, match=r"format_name 'MU_LAW'.*plughw"):
        AlsaBackend().open_playback(pcm)


def test_a_missing_device_is_gone_not_a_crash(file_card):
    pcm = PcmSettings(capture_device="nosuchcard", playback_device="nosuchcard")
    with pytest.raises(DeviceGoneError, match="nosuchcard"):
        AlsaBackend().open_capture(pcm)


def test_environment_points_alsa_at_the_test_config(file_card):
    assert os.environ["ALSA_CONFIG_PATH"].endswith("asound.conf")
