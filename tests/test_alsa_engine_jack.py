"""The audio engine on a real-time paced device: jackd2's dummy driver through ALSA's jack
plugin, wired to a test player and a two-channel recorder (channel 0 hears the player,
channel 1 the handset's playback), so both sides of the engine run at the device's pace.

Each test runs for a few seconds; speeds are measured in bench/, not asserted here.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path

import pytest

from firmware.handset_audio import HandsetAudio
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.realtime import become_realtime
from lab.virtual_audio import (
    JackServer,
    PcmPlayer,
    PcmRecorder,
    alsa_config_path,
    click_lags,
    click_train,
    jack_pcm_conf,
    power_at,
    realtime_permitted,
    wait_until,
)

pytestmark = [
    pytest.mark.realtime,
    pytest.mark.skipif(not JackServer.available(), reason="needs jackd2 and libasound2-plugins"),
]
RATE = 16000


def bench_conf(tag: str) -> str:
    return (
        jack_pcm_conf("player", "player", playback_to=["system:playback_1"])
        + jack_pcm_conf("recorder", "recorder", capture_from=["player:out_000", "system:capture_2"])
        + jack_pcm_conf("hcap", f"{tag}cap", capture_from=["player:out_000"])
        + jack_pcm_conf("hplay", f"{tag}play", playback_to=["recorder:in_001"])
        + jack_pcm_conf("scap", f"{tag}scap", capture_from=["system:capture_1"])
        + jack_pcm_conf("splay", f"{tag}splay", playback_to=["system:playback_1"])
    )


@pytest.fixture
def jack(tmp_path: Path, monkeypatch):
    server = JackServer()
    conf = tmp_path / "jack.conf"
    conf.write_text(bench_conf("hs"))
    monkeypatch.setenv("ALSA_CONFIG_PATH", alsa_config_path(conf))
    server.start()  # may settle on another pool name than it was made with: env after
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


class Echo(threading.Thread):
    """The smallest call path: everything captured is played straight back."""

    def __init__(self, engine: AudioEngine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop_event = threading.Event()
        self.moved = 0

    def run(self) -> None:
        become_realtime(60)  # as the handset's call path is (falls back quietly if refused)
        while not self.stop_event.is_set():
            ready, _, _ = select.select([self.engine.capture_fd], [], [], 0.05)
            if ready:
                try:
                    data = self.engine.read_capture()
                except OSError:  # the engine was stopped under us
                    return
                self.moved += len(data)
                self.engine.write_playback(data)


def start_instruments(signal_pcm: bytes) -> tuple[PcmPlayer, PcmRecorder]:
    player = PcmPlayer("player", signal_pcm, loop=True)
    player.start()
    player.started_event.wait(5)
    recorder = PcmRecorder("recorder", channels=2)
    recorder.start()
    recorder.started_event.wait(5)
    assert player.error is None and recorder.error is None
    return player, recorder


def stop(*threads) -> None:
    for thread in threads:
        thread.stop_event.set()
    for thread in threads:
        thread.join(5)


def engine_settings(**changes) -> EngineSettings:
    pcm = PcmSettings(capture_device="hcap", playback_device="hplay")
    return EngineSettings(pcm=pcm, **changes)


def test_engine_moves_speech_from_capture_to_playback_at_the_devices_pace(jack):
    player, recorder = start_instruments(click_train(RATE, 1.0))
    with AudioEngine(engine_settings()) as engine:
        echo = Echo(engine)
        echo.start()
        assert wait_until(lambda: engine.stats().state == "running", 10)
        time.sleep(2.5)
        stats = engine.stats()
        stop(echo)
    stop(player, recorder)
    channels = array("h", recorder.data)
    # clicks come every 200 ms; those played before the engine was up have no echo
    lags = click_lags(channels[0::2], channels[1::2], RATE, max_lag_s=0.15)
    assert len(lags) >= 10  # every click of the train came back out of the playback device
    # The delay stays bounded: a late handoff may queue up to max_queued_periods (2 x 10 ms)
    # in the engine, never more; 5 ms more for the JACK period the onsets are measured in.
    assert max(lags) - min(lags) <= 25
    assert stats.state == "running"
    assert stats.periods > 100 and stats.reopens == 0
    assert stats.realtime == realtime_permitted()


HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


def starve_audio_thread(pid: int, seconds: float) -> None:
    """A higher-priority real-time task takes the audio thread's only CPU for `seconds`:
    a scheduling hiccup far longer than the device buffer (jackd's threads run elsewhere)."""
    os.sched_setaffinity(pid, {0})  # the engine's main thread only; jack's threads may move
    subprocess.run([sys.executable, "-c", HOG, "0", str(seconds)], check=True)


@pytest.mark.skipif(not realtime_permitted(), reason="starving the audio thread needs SCHED_FIFO")
def test_a_stalled_engine_overruns_counts_the_xruns_and_recovers_without_reopening(jack):
    player, recorder = start_instruments(click_train(RATE, 1.0))
    with AudioEngine(engine_settings()) as engine:
        echo = Echo(engine)
        echo.start()
        assert wait_until(lambda: engine.stats().state == "running", 5)
        starve_audio_thread(engine._proc.pid, seconds=0.2)
        before = engine.stats().periods
        assert wait_until(lambda: engine.stats().periods > before + 50, 5)
        stats = engine.stats()
        stop(echo)
    stop(player, recorder)
    assert stats.xruns >= 1
    assert stats.reopens == 0 and stats.state == "running"


def test_a_vanished_device_is_reopened_and_audio_flows_again(jack):
    pcm = PcmSettings(capture_device="scap", playback_device="splay")
    with AudioEngine(EngineSettings(pcm=pcm, reopen_backoff_s=(0.05, 0.4))) as engine:
        echo = Echo(engine)
        echo.start()
        assert wait_until(lambda: engine.stats().periods > 20, 5)
        jack.vanish()  # the sound card is pulled out
        assert wait_until(lambda: engine.stats().state == "reopening", 5)
        time.sleep(0.5)
        jack.start()  # and plugged back in
        assert wait_until(lambda: engine.stats().state == "running", 10)
        moved = echo.moved
        assert wait_until(lambda: echo.moved > moved + 20 * 320, 5)
        stats = engine.stats()
        stop(echo)
    assert stats.reopens >= 1
    assert stats.error == ""


def test_a_device_at_the_wrong_rate_fails_once_with_a_clear_error(jack):
    pcm = PcmSettings(capture_device="scap_jack", playback_device="splay_jack")
    with AudioEngine(EngineSettings(pcm=pcm)) as engine:
        assert wait_until(lambda: engine.stats().state == "failed", 10)
        stats = engine.stats()
    assert "rate 48000 instead of 16000" in stats.error
    assert "plughw" in stats.error
    assert stats.reopens == 0


def tones_heard(samples, block: int = 1600) -> list[str]:
    """Per 100 ms block of the recording: "dial", "key5" or "" (silence or other)."""
    names = []
    for start in range(0, len(samples) - block, block):
        chunk = samples[start : start + block]
        powers = {f: power_at(chunk, f) for f in (350, 440, 770, 1336, 1000)}
        loud = {f for f, p in powers.items() if p > 1e5}
        names.append(
            {frozenset({350, 440}): "dial", frozenset({770, 1336}): "key5"}.get(frozenset(loud), "")
        )
    return names


def test_handset_tones_come_out_of_the_playback_device(jack):
    player, recorder = start_instruments(bytes(3200))

    async def handset() -> None:
        with AudioEngine(engine_settings()) as engine:
            audio = HandsetAudio(engine, send=lambda *frame: None)
            loop = asyncio.get_running_loop()
            audio.attach(loop)
            while engine.stats().state != "running":
                await asyncio.sleep(0.05)
            audio.play_tone("dial")
            await asyncio.sleep(1.0)
            audio.play_tone(None)
            await asyncio.sleep(0.3)
            audio.key_pressed("5")
            await asyncio.sleep(0.5)
            audio.detach(loop)

    def call_path() -> None:  # in its own thread, real-time as the handset's call path is
        become_realtime(60)
        asyncio.run(asyncio.wait_for(handset(), 20))

    thread = threading.Thread(target=call_path)
    thread.start()
    thread.join()
    stop(player, recorder)
    heard = tones_heard(array("h", recorder.data)[1::2])
    assert heard.count("dial") >= 5  # ~1 s of dial tone: most of its 100 ms blocks whole
    assert "key5" in heard[heard.index("dial") :]  # then the keypad beep for "5"
