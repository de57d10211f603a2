"""The `file` audio backend: a WAV is the microphone (looped, paced like a card), and what the
handset plays is a WAV that is valid after every period (the engine process is killed, not
asked, when the handset stops)."""

from __future__ import annotations

import wave
from array import array

import pytest

from hw.soundcard.devices import DeviceMismatchError, PcmSettings
from hw.soundcard.file_pcm import FileBackend

SETTINGS = PcmSettings(period_frames=80)  # 5 ms periods keep the paced reads short


def write_wav(path, samples: list[int], rate: int = 16000, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(array("h", samples).tobytes())


def test_the_microphone_file_loops_period_by_period(tmp_path):
    mic = tmp_path / "mic.wav"
    write_wav(mic, list(range(120)))  # a period and a half
    settings = PcmSettings(capture_device=str(mic), period_frames=80)
    capture = FileBackend().open_capture(settings)
    first, second = array("h", capture.read()), array("h", capture.read())
    assert list(first) == list(range(80))
    assert list(second) == [*range(80, 120), *range(40)]


def test_no_microphone_file_is_silence(tmp_path):
    capture = FileBackend().open_capture(PcmSettings(capture_device="", period_frames=80))
    assert capture.read() == bytes(SETTINGS.period_bytes)


def test_the_earpiece_file_is_a_valid_wav_without_being_closed(tmp_path):
    out = tmp_path / "ear.wav"
    playback = FileBackend().open_playback(PcmSettings(playback_device=str(out), period_frames=80))
    periods = [array("h", [i] * 80).tobytes() for i in range(3)]
    for period in periods:
        playback.write(period)
    with wave.open(str(out), "rb") as wav:  # read while still open for writing
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(wav.getnframes()) == b"".join(periods)
    playback.close()


def test_a_microphone_file_in_another_format_is_a_mismatch_with_the_fix(tmp_path):
    mic = tmp_path / "mic.wav"
    write_wav(mic, [0] * 100, rate=48000, channels=2)
    with pytest.raises(DeviceMismatchError, match=r"48000 Hz, 2 channel.*needs 16000 Hz"):
        FileBackend().open_capture(PcmSettings(capture_device=str(mic), period_frames=80))
