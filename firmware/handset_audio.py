"""The handset's sound, on the asyncio loop: call audio in a call, tones around it.

Why this shape: the sound card's clock must pace everything, and the network side must never
hold the sound card up. So the loop wakes when the engine process has captured audio
(`add_reader` on its pipe), and for every captured chunk it does exactly one round: encode and
send what is complete, then hand the engine the same duration of playback — decoded call
audio pulled from the jitter buffer, or a tone, or silence. Received VoMP audio only goes
into the jitter buffer. Nothing here waits; the engine absorbs a late round (see DeviceLoop).

When the sound card was gone for a while (the engine reopened it), the call's media clocks
must jump the gap with the wall clock, or every frame after it is late by the outage for the
rest of the call. Sending the gap as a burst of silent frames would arrive late all at once
and blow up the far jitter buffer; instead one silent frame goes out whose duration covers
the gap (VoMP's media time advances by it; the far end conceals the hole), and the same span
of received audio is played out into nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy

from hw.soundcard.engine import AudioEngine
from hw.soundcard.tones import ToneSource, mix
from vomp.events import AudioFrameReceived, Event
from vomp.media import OUR_CODECS, CallAudio, choose_send_codec

SendAudio = Callable[[int, int, bytes, int], object]
"""send(call, codec, payload, duration_ms): queue one VoMP audio frame on the node."""


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
        self.call_audio: CallAudio | None = None
        self._tone: ToneSource | None = None
        self._keypad: ToneSource | None = None
        self.muted = False
        self.gain = 1.0
        self._echo = False
        self.echo_peak = 0
        self._idle = False  # what the engine was last told (it starts handing audio over)
        self.rounds = 0
        self.gaps_bridged_ms = 0.0
        self._reopens_seen = engine.reopens
        self._last_round_at: float | None = None

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

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.engine.capture_fd)

    # -- what the phone logic asks for

    def start_call(self, call: int, remote_codecs: tuple[int, ...]) -> CallAudio | None:
        """Begin a call's audio; None (and no audio) if the peer shares no codec with us."""
        codec = choose_send_codec(self.codecs, remote_codecs)
        if codec is None:
            return None
        self.call, self.call_audio, self._tone = call, CallAudio(codec), None
        pcm = self.engine.settings.pcm
        self.call_audio.device_latency_ms = pcm.playback_prefill_periods * pcm.period_ms
        self._update_idle()
        return self.call_audio

    def end_call(self) -> dict[str, object]:
        """Stop the call's audio; returns its final statistics."""
        final = self.stats()
        self.call = self.call_audio = None
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

    def set_volume(self, level: int, reference: int = 7) -> None:
        """Earpiece volume of call audio: 3 dB a step around `reference` (unity gain)."""
        self.gain = 10 ** ((level - reference) * 3 / 20)

    def key_pressed(self, key: str) -> None:
        """Keypad feedback: a short DTMF beep, mixed over whatever is playing."""
        self._keypad = ToneSource.keypad(key, self._rate)
        self._update_idle()

    def on_event(self, event: Event) -> None:
        if (
            isinstance(event, AudioFrameReceived)
            and self.call_audio is not None
            and event.call == self.call
        ):
            self.call_audio.receive(event.codec, event.time_ms, event.payload, self._clock())

    # -- the round, once per captured chunk

    def _on_capture(self) -> None:
        captured = self.engine.read_capture()
        if not captured:
            return
        self.rounds += 1
        now = self._clock()
        call, call_audio = self.call, self.call_audio
        if self.engine.reopens != self._reopens_seen:
            self._reopens_seen = self.engine.reopens
            if call is not None and call_audio is not None and self._last_round_at is not None:
                self._bridge_gap(call, call_audio, now - self._last_round_at, len(captured), now)
        self._last_round_at = now
        if call is not None and call_audio is not None:
            sent = bytes(len(captured)) if self.muted else captured
            for out in call_audio.capture(sent):
                self._send(call, out.codec, out.payload, out.duration_ms)
            pcm = call_audio.playback(len(captured) // 2, now)
            if self.gain != 1.0:
                pcm = scaled(pcm, self.gain)
        elif self.echo:
            pcm = captured
            self.echo_peak = max(self.echo_peak, peak(captured))
        elif self._tone is not None:
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
        """Tell the engine whether rounds are needed at all: not without a call, an echo test,
        a tone or a keypad beep (the engine then plays silence without waking us)."""
        idle = self.call is None and not self._echo and self._tone is None and self._keypad is None
        if idle != self._idle:
            self._idle = idle
            self.engine.set_idle(idle)
            if not idle:  # rounds stopped for a while: that was no device outage
                self._last_round_at = None
                self._reopens_seen = self.engine.reopens

    def _bridge_gap(
        self, call: int, call_audio: CallAudio, since_s: float, nbytes: int, now: float
    ) -> None:
        """Move both media clocks across a device outage of `since_s` (less what just came)."""
        frame_ms = call_audio.config.frame_ms
        skip_ms = int(1000 * since_s - 500 * nbytes / self._rate) // frame_ms * frame_ms
        if skip_ms <= 0:
            return
        outgoing = call_audio.capture(bytes(2 * self._rate * frame_ms // 1000))
        for i, out in enumerate(outgoing):
            extra = skip_ms if i == len(outgoing) - 1 else 0
            self._send(call, out.codec, out.payload, out.duration_ms + extra)
        call_audio.playback(skip_ms * self._rate // 1000, now)
        self.gaps_bridged_ms += skip_ms

    def stats(self) -> dict[str, object]:
        """Call-path and device statistics in one flat dict for the diagnostics shell."""
        merged: dict[str, object] = dict(self.engine.stats().as_dict())
        if self.call_audio is not None:
            merged.update(self.call_audio.stats.as_dict())
        merged["device_gaps_bridged_ms"] = round(self.gaps_bridged_ms)
        return merged


def peak(pcm: bytes) -> int:
    """The largest sample magnitude of 16-bit `pcm`."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.int32)
    return int(numpy.abs(samples).max()) if len(samples) else 0


def scaled(pcm: bytes, gain: float) -> bytes:
    """16-bit samples times `gain`, clipped."""
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float32) * gain
    return numpy.clip(samples, -32768, 32767).astype("<i2").tobytes()
