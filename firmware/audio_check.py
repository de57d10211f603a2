"""`handset audio-check`: bring up a sound card the way a call would, and say how it went.

For putting a new USB card (or a new image) into service: it opens the capture and playback
devices through the same engine a call uses (real-time process, info() checks), plays a
call-progress tone or echoes the microphone for a few seconds, and prints the engine's
statistics and the microphone level as JSON. A card that opens at the wrong rate or format
fails here with the message a call would log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from array import array

from firmware.handset_audio import HandsetAudio
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.tones import CALL_PROGRESS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PcmSettings()
    parser.add_argument("--capture", default=defaults.capture_device, help="ALSA capture device")
    parser.add_argument("--playback", default=defaults.playback_device, help="ALSA playback")
    parser.add_argument("--period-frames", type=int, default=defaults.period_frames)
    parser.add_argument(
        "--backend", help="alsa (default, or $HANDSET_AUDIO_BACKEND), or fake (no sound card)"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--tone", default="dial", choices=sorted(CALL_PROGRESS))
    what.add_argument("--echo", action="store_true", help="play the microphone back")


class _LevelMeter:
    """Peak and RMS of everything captured, in dBFS."""

    def __init__(self) -> None:
        self.peak = 0
        self.energy = 0.0
        self.samples = 0

    def add(self, pcm: bytes) -> None:
        samples = array("h", pcm)
        if samples:
            self.peak = max(self.peak, max(abs(x) for x in samples))
            self.energy += sum(x * x for x in samples)
            self.samples += len(samples)

    def dbfs(self) -> dict[str, float]:
        def db(x: float) -> float:
            return round(20 * math.log10(x / 32768), 1) if x > 0 else -120.0

        rms = math.sqrt(self.energy / self.samples) if self.samples else 0.0
        return {"capture_peak_dbfs": db(self.peak), "capture_rms_dbfs": db(rms)}


async def _check(args: argparse.Namespace) -> dict[str, object]:
    pcm = PcmSettings(
        capture_device=args.capture, playback_device=args.playback, period_frames=args.period_frames
    )
    meter = _LevelMeter()
    with AudioEngine(EngineSettings(pcm=pcm, backend=args.backend)) as engine:
        loop = asyncio.get_running_loop()
        if args.echo:

            def echo() -> None:
                data = engine.read_capture()
                meter.add(data)
                engine.write_playback(data)

            loop.add_reader(engine.capture_fd, echo)
        else:
            audio = HandsetAudio(engine, send=lambda *frame: None)
            audio.play_tone(args.tone)
            audio.attach(loop)
        await asyncio.sleep(args.seconds)
        loop.remove_reader(engine.capture_fd)
        report: dict[str, object] = dict(engine.stats().as_dict())
    report.update(meter.dbfs() if args.echo else {})
    return report


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(_check(args))
    print(json.dumps(report, indent=2))
    return 0 if report["device_state"] == "running" and report["device_periods"] else 1
