"""The call's audio where the sound card's clock is: CallAudio run by the engine process.

Why here and not in the handset's process: the handset's process was woken every period to
encode, pull the jitter buffer and hand a period of playback back, and the engine waited part
of a period for that answer (or played it a period late). The engine process is awake every
period anyway, so it runs the call's CallAudio itself: it captures into the encoder and pulls
the jitter buffer for exactly the period it is about to write, with no answer to wait for, and
hands the handset only encoded frames, one per 20 ms. The handset still owns the call: it
starts and ends it, mutes it and sets its gain, and feeds it the frames the node received
(`hw.soundcard.call_records`).

Like CallAudio, this is a state machine: records and captured PCM in, `now` given, PCM and
records out; the engine process does the pipe I/O and reads the clock.
"""

from __future__ import annotations

import numpy

from hw.soundcard.call_records import (
    CallStats,
    EndCall,
    Gain,
    Mute,
    ReceivedFrame,
    RecordReader,
    SentFrame,
    StartCall,
    encode,
)
from hw.soundcard.devices import PcmSettings
from vomp.media import AudioConfig, CallAudio

STATS_EVERY_FRAMES = 10
"""How often (in sent frames: 200 ms) the call's statistics go to the handset."""


class EngineCall:
    """At most one call's audio; between calls, `round()` is not asked for."""

    def __init__(self, pcm: PcmSettings, config: AudioConfig | None = None) -> None:
        self._config = config
        self._device_latency_ms = pcm.playback_prefill_periods * pcm.period_ms
        self._reader = RecordReader()
        self.call: int | None = None
        self.audio: CallAudio | None = None
        self.muted = False
        self.gain = 1.0
        self.refused = 0
        """Records that made no sense here (unknown codec, a frame of no current call)."""
        self._seq = 0
        self._unreported = 0

    @property
    def malformed(self) -> int:
        return self._reader.malformed

    def take(self, data: bytes) -> None:
        """Apply the records the handset wrote (any piece of its byte stream)."""
        for record in self._reader.feed(data):
            match record:
                case ReceivedFrame(call, codec, time_ms, arrived, payload):
                    if self.audio is not None and call == self.call:
                        self.audio.receive(codec, time_ms, payload, arrived)
                    else:
                        self.refused += 1
                case StartCall(call, codec):
                    self._start(call, codec)
                case EndCall(call):
                    if call == self.call:
                        self.call = self.audio = None
                case Mute(on):
                    self.muted = on
                case Gain(gain):
                    self.gain = gain
                case _:
                    self.refused += 1

    def _start(self, call: int, codec: int) -> None:
        if self.audio is not None and call == self.call and codec == self.audio.send_codec:
            return
        try:
            audio = CallAudio(codec, self._config)
        except ValueError:
            self.refused += 1
            return
        audio.device_latency_ms = self._device_latency_ms
        self.call, self.audio, self._seq, self._unreported = call, audio, 0, 0

    def round(self, captured: bytes, now: float) -> tuple[bytes | None, list[bytes]]:
        """One period: the call's PCM to play for `captured` (None outside a call) and the
        records to hand to the handset (encoded frames, now and then the statistics)."""
        audio, call = self.audio, self.call
        if audio is None or call is None:
            return None, []
        out = []
        for frame in audio.capture(bytes(len(captured)) if self.muted else captured):
            out.append(
                encode(SentFrame(call, self._seq, frame.codec, frame.duration_ms, frame.payload))
            )
            self._seq += 1
            self._unreported += 1
        if self._unreported >= STATS_EVERY_FRAMES:
            out.append(encode(CallStats(call, audio.stats.as_dict())))
            self._unreported = 0
        pcm = audio.playback(len(captured) // 2, now)
        if self.gain != 1.0:
            pcm = scaled(pcm, self.gain)
        return pcm, out


def scaled(pcm: bytes, gain: float) -> bytes:
    """16-bit samples times `gain`, clipped."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float32) * gain
    return numpy.clip(samples, -32768, 32767).astype("<i2").tobytes()
