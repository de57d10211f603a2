"""The handset's sound, on the asyncio loop: tones outside a call, and the call's frames.

Why this shape: the sound card's clock must pace everything, and the network side must never
hold the sound card up. In a call the engine process runs the call's audio itself
(`hw.soundcard.engine_call`): it encodes what it captures and plays what the jitter buffer
gives it, in the card's own period. This side only moves frames: each encoded frame the
engine hands back goes to the node (`send`), and each audio frame the node received goes to
the engine with its arrival time. So in a call the handset's process wakes once per frame
each way, not once per period.

Outside a call (tones, the echo test, keypad beeps) the engine hands over each captured
period, and this side answers with a period of playback (`add_reader` on its pipe). When
nothing needs that, the engine is told so and plays silence on its own. A keypad beep during
a call goes the same way and the engine mixes it over the call.

When the sound card was gone for a while (a fresh engine process took over), the call's media
clock must jump the gap with the wall clock, or every frame after it is late by the outage for
the rest of the call. Sending the gap as a burst of silent frames would arrive late all at
once and blow up the far jitter buffer; instead the first frame of the fresh engine process
carries the gap in its duration (VoMP's media time advances by it; the far end conceals the
hole).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy

from hw.soundcard.call_records import CallStats, SentFrame
from hw.soundcard.engine import AudioEngine
from hw.soundcard.tones import ToneSource, mix
from vomp.events import AudioFrameReceived, Event
from vomp.media import OUR_CODECS, choose_send_codec

SendAudio = Callable[[int, int, bytes, int], object]
"""send(call, codec, payload, duration_ms): queue one VoMP audio frame on the node."""

GAUGES = {"codec_sent", "codec_received", "loss_fraction"}
"""Call statistics a fresh engine process reports anew rather than counts on from zero."""


class HandsetAudio:
    def __init__(
        self,
        engine: AudioEngine,
        send: SendAudio,
        clock: Callable[[], float] = time.monotonic,
        codecs: tuple[int, ...] = OUR_CODECS,
    ) -> None:
        self.engine = engine
        self.codecs = codecs
        self._send = send
        self._clock = clock
        self._rate = engine.settings.pcm.rate
        self.call: int | None = None
        self.codec: int | None = None
        self._tone: ToneSource | None = None
        self._keypad: ToneSource | None = None
        self.muted = False
        self.gain = 1.0
        self._echo = False
        self.echo_peak = 0
        self._idle = False  # what the engine was last told (it starts handing audio over)
        self.rounds = 0
        self.frames_sent = 0
        self.gaps_bridged_ms = 0.0
        self._last_frame_at: float | None = None
        self._call_stats: dict[str, object] = {}
        self._earlier_stats: dict[str, object] = {}
        """The call's counters from engine processes before the running one."""

    @property
    def echo(self) -> bool:
        """Self test outside a call: the microphone straight to the earpiece."""
        return self._echo

    @echo.setter
    def echo(self, on: bool) -> None:
        self._echo = on
        self._update_idle()

    # -- life cycle

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.engine.capture_fd, self._on_capture)
        loop.add_reader(self.engine.call_fd, self._on_call_records)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.engine.capture_fd)
        loop.remove_reader(self.engine.call_fd)

    # -- what the phone logic asks for

    def start_call(self, call: int, remote_codecs: tuple[int, ...]) -> int | None:
        """Begin a call's audio; returns the codec we send, or None (and no audio) if the
        peer shares no codec with us."""
        codec = choose_send_codec(self.codecs, remote_codecs)
        if codec is None:
            return None
        self.call, self.codec, self._tone = call, codec, None
        self.frames_sent, self._last_frame_at = 0, None
        self._call_stats, self._earlier_stats = {"codec_sent": codec}, {}
        self.engine.start_call(call, codec, muted=self.muted, gain=self.gain)
        self._update_idle()
        return codec

    def end_call(self) -> dict[str, object]:
        """Stop the call's audio; returns its final statistics."""
        self._on_call_records()  # the latest the engine said
        final = self.stats()
        if self.call is not None:
            self.engine.end_call(self.call)
        self.call = self.codec = None
        self._update_idle()
        return final

    def play_tone(self, name: str | None) -> None:
        """A call-progress tone ("dial", "ringback", "busy", ...) while not in a call; None
        for silence."""
        self._tone = ToneSource.call_progress(name, self._rate) if name else None
        self._update_idle()

    def set_mute(self, on: bool) -> None:
        """Muted, the far end hears silence (still sent, so its jitter buffer keeps time)."""
        self.muted = on
        self.engine.set_call_mute(on)

    def set_volume(self, level: int, reference: int = 7) -> None:
        """Earpiece volume of call audio: 3 dB a step around `reference` (unity gain)."""
        self.gain = 10 ** ((level - reference) * 3 / 20)
        self.engine.set_call_gain(self.gain)

    def key_pressed(self, key: str) -> None:
        """Keypad feedback: a short DTMF beep, mixed over whatever is playing."""
        self._keypad = ToneSource.keypad(key, self._rate)
        self._update_idle()

    def on_event(self, event: Event) -> None:
        if isinstance(event, AudioFrameReceived) and event.call == self.call:
            self.engine.deliver_frame(
                event.call, event.codec, event.time_ms, self._clock(), event.payload
            )

    # -- the call's frames, as the engine process encodes them

    def _on_call_records(self) -> None:
        for record in self.engine.read_call_records():
            if isinstance(record, SentFrame) and record.call == self.call:
                self._send_frame(record)
            elif isinstance(record, CallStats) and record.call == self.call:
                self._call_stats = record.stats

    def _send_frame(self, frame: SentFrame) -> None:
        assert self.call is not None
        now = self._clock()
        duration = frame.duration_ms
        if frame.seq == 0 and self._last_frame_at is not None:
            # A fresh engine process: its first frame also carries the time without frames.
            silent_ms = round(1000 * (now - self._last_frame_at)) - duration
            skip_ms = max(0, silent_ms // duration * duration)
            duration += skip_ms
            self.gaps_bridged_ms += skip_ms
            self._earlier_stats = self._counted_so_far()
            self._call_stats = {"codec_sent": self.codec}
        self._last_frame_at = now
        self.frames_sent += 1
        self._send(self.call, frame.codec, frame.payload, duration)

    def _counted_so_far(self) -> dict[str, object]:
        """The call's statistics over every engine process so far: counters summed."""
        merged = dict(self._earlier_stats)
        for key, value in self._call_stats.items():
            earlier = merged.get(key)
            counts = type(value) is int and key not in GAUGES and type(earlier) is int
            merged[key] = earlier + value if counts else value  # type: ignore[operator]
        return merged

    # -- a round outside the call's audio, once per captured period while one is needed

    def _on_capture(self) -> None:
        captured = self.engine.read_capture()
        if not captured:
            return
        self.rounds += 1
        if self.echo and self.call is None:
            pcm = captured
            self.echo_peak = max(self.echo_peak, peak(captured))
        elif self._tone is not None and self.call is None:
            pcm = self._tone.read(len(captured))
        else:
            pcm = bytes(len(captured))
        if self._keypad is not None:
            pcm = mix(pcm, self._keypad.read(len(pcm)))
            if self._keypad.finished:
                self._keypad = None
        self.engine.write_playback(pcm)
        self._update_idle()

    def _update_idle(self) -> None:
        """Tell the engine whether rounds are needed at all: only for an echo test, a tone
        outside a call or a keypad beep (otherwise the engine plays the call or silence
        without waking us)."""
        needed = self._keypad is not None or (
            self.call is None and (self._echo or self._tone is not None)
        )
        if needed == self._idle:
            self._idle = not needed
            self.engine.set_idle(not needed)

    def stats(self) -> dict[str, object]:
        """Call-path and device statistics in one flat dict for the diagnostics shell."""
        merged: dict[str, object] = dict(self.engine.stats().as_dict())
        if self.call is not None:
            merged.update(self._counted_so_far())
        merged["device_gaps_bridged_ms"] = round(self.gaps_bridged_ms)
        return merged


def peak(pcm: bytes) -> int:
    """The largest sample magnitude of 16-bit `pcm`."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.int32)
    return int(numpy.abs(samples).max()) if len(samples) else 0
