"""Opus through libopus (opuslib_next): the handset's voice codec.

Why a wrapper: opuslib_next exposes every libopus knob but none of the call-level rules we
keep — mono VOIP, in-band FEC on with an expected loss that follows the measured loss, DTX off
(the jitter buffer wants one packet per frame, always), and the three ways to get a frame's audio
back: the packet itself, the next packet's FEC copy, or loss concealment.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import opuslib_next
from opuslib_next.api import decoder as opus_decoder

SIGNAL_VOICE = 3001  # OPUS_SIGNAL_VOICE: tells the mode decision to favour SILK for speech.
MAX_FRAME_MS = 120  # the longest frame an Opus packet can carry


class OpusPacketError(ValueError):
    """libopus refused a packet (corrupt or not Opus); the caller counts and drops it."""


@dataclass(frozen=True)
class OpusSettings:
    """Encoder settings; the defaults are the handset's tuned call settings (see bench/)."""

    sample_rate: int = 16000
    bitrate: int = 32000
    complexity: int = 5
    """5 halves the encoder's CPU against 8 (241 against 482 us per frame here) for 0.04 less
    PESQ-WB (bench/); a Pi 3 or Zero 2 W needs the CPU more than the last 0.04."""
    fec: bool = True
    min_expected_loss_percent: int = 5
    """Floor for OPUS_SET_PACKET_LOSS_PERC: FEC bits only appear when this is above 0, and the
    first lost packet of a call comes before any loss was measured."""

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, 12000, 16000, 24000, 48000):
            raise ValueError(f"Opus cannot run at {self.sample_rate} Hz")
        if not 6000 <= self.bitrate <= 510000:
            raise ValueError(f"Opus bitrate {self.bitrate} is outside 6000..510000 bit/s")
        if not 0 <= self.complexity <= 10:
            raise ValueError(f"Opus complexity {self.complexity} is outside 0..10")
        if not 0 <= self.min_expected_loss_percent <= 100:
            raise ValueError("expected loss must be a percentage")


class OpusEncoder:
    """Mono VOIP encoder: one call to `encode` per frame of s16le PCM, one packet out."""

    def __init__(self, settings: OpusSettings | None = None) -> None:
        self.settings = settings or OpusSettings()
        enc = opuslib_next.Encoder(self.settings.sample_rate, 1, opuslib_next.APPLICATION_VOIP)
        enc.bitrate = self.settings.bitrate
        enc.complexity = self.settings.complexity
        enc.signal = SIGNAL_VOICE
        enc.inband_fec = int(self.settings.fec)
        enc.dtx = 0
        self._enc = enc
        self._lookahead_ms = enc.lookahead * 1000 / self.settings.sample_rate
        self.expected_loss_percent = -1
        self.set_measured_loss(0.0)

    @property
    def lookahead_ms(self) -> float:
        """Algorithmic delay the encoder adds beyond the frame itself."""
        return self._lookahead_ms

    def set_measured_loss(self, loss_fraction: float) -> None:
        """Drive the FEC strength from the loss measured on the call (never below the floor)."""
        percent = max(self.settings.min_expected_loss_percent, round(loss_fraction * 100))
        percent = min(percent, 100)
        if percent != self.expected_loss_percent:
            self._enc.packet_loss_perc = percent
            self.expected_loss_percent = percent

    def encode(self, pcm: bytes) -> bytes:
        """Encode one frame (2.5..60 ms of s16le mono) into one Opus packet."""
        samples = len(pcm) // 2
        return self._enc.encode(pcm, samples)


class OpusDecoder:
    """Mono decoder with the two ways to fill a missing frame: next packet's FEC, or PLC."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self._dec = opuslib_next.Decoder(sample_rate, 1)
        self._pcm = (ctypes.c_int16 * (MAX_FRAME_MS * sample_rate // 1000))()
        """The one output buffer, reused: opuslib_next's decode makes a fresh one per frame and
        leaves it in a reference cycle, garbage for the collector the audio engine keeps off."""

    def _decode(self, packet: bytes | None, samples: int, fec: bool = False) -> bytes:
        size = len(packet) if packet else 0
        state = self._dec.decoder_state
        made = opus_decoder.libopus_decode(state, packet, size, self._pcm, samples, int(fec))
        if made < 0:
            raise opuslib_next.OpusError(made)
        return ctypes.string_at(self._pcm, 2 * made)

    def samples_in(self, packet: bytes) -> int:
        """How many samples (at our rate) `packet` decodes to; OpusPacketError if it is bad."""
        try:
            n = opus_decoder.get_nb_samples(self._dec.decoder_state, packet, len(packet))
        except opuslib_next.OpusError as e:
            raise OpusPacketError(str(e)) from e
        if n <= 0 or n > MAX_FRAME_MS * self.sample_rate // 1000:
            raise OpusPacketError(f"Opus packet claims {n} samples")
        return n

    def decode(self, packet: bytes) -> bytes:
        """Decode one packet to s16le PCM."""
        try:
            return self._decode(packet, self.samples_in(packet))
        except opuslib_next.OpusError as e:
            raise OpusPacketError(str(e)) from e

    def decode_fec(self, next_packet: bytes, samples: int) -> bytes:
        """Rebuild the lost frame *before* `next_packet` from its in-band FEC copy.

        libopus falls back to concealment by itself when that packet carries no FEC data.
        `samples` is rounded as for `conceal`.
        """
        try:
            return self._decode(next_packet, self._plc_size(samples), fec=True)
        except opuslib_next.OpusError as e:
            raise OpusPacketError(str(e)) from e

    def conceal(self, samples: int) -> bytes:
        """Packet loss concealment continuing what was last decoded.

        libopus conceals whole 2.5 ms steps only (up to 120 ms), so `samples` is rounded up to
        one; the caller gets what was made (the pipeline takes PCM of any length).
        """
        return self._decode(None, self._plc_size(samples))

    def _plc_size(self, samples: int) -> int:
        step = self.sample_rate // 400  # 2.5 ms
        return min(max(step, -(-samples // step) * step), MAX_FRAME_MS * self.sample_rate // 1000)

    @staticmethod
    def may_carry_fec(packet: bytes) -> bool:
        """Whether `packet` is SILK or hybrid, the modes that can carry an FEC (LBRR) copy.

        The exact LBRR flag sits inside the range-coded SILK header; libopus 1.3 has no call to
        read it, so statistics count FEC "used" when the next packet could carry it.
        """
        return bool(packet) and (packet[0] >> 3) < 16
