"""Call audio signal processing: codecs, redundancy, jitter buffer, statistics. No ALSA here.

The sound-card edge (`hw/soundcard`, `firmware/handset_audio.py`) and the VoMP node use one
object per call::

    from vomp.media import CallAudio, OUR_CODECS, choose_send_codec

    codec = choose_send_codec(OUR_CODECS, peer_codec_list)   # None: no shared codec, end call
    audio = CallAudio(codec)                                 # AudioConfig() = tuned defaults
    # capture thread, once per period (any length of s16le mono 16 kHz):
    for out in audio.capture(pcm):
        node.send_audio(call_id, out.codec, out.payload, out.duration_ms)
    # network side, per VoMP AudioFrameReceived event (time_ms = rebuilt media time):
    audio.receive(event.codec, event.time_ms, event.payload, now)
    # playback thread, once per period (exactly `samples` come back):
    pcm = audio.playback(samples, now)
    audio.stats                                              # AudioStats dataclass, .as_dict()
    audio.device_latency_ms = ...     # engine: capture+playback buffering, for the delay estimate
    audio.algorithmic_delay_ms        # frame + codec lookahead: the codec's share of m2e_floor_ms

`now` is the receiver's monotonic clock in seconds; nothing here reads a clock, sleeps or does
I/O, so every test is deterministic. CallAudio is not thread-safe: the engine serialises calls
(one lock, or one real-time thread doing both directions).

Codecs (VoMP numbers and the choice of one: `vomp.codecs`): 0x70 OPUS_REDUNDANT (ours, between our
handsets), 7 OPUS and 2 MULAW (with servald). Always 20 ms per VoMP frame: VoMP's time field counts
20 ms units (a second frame with the same time is dropped as a duplicate, SPEC §12.6), and one
packet per 20 ms is the packet rate the mesh pays for. 10 ms frames would cut 10 ms of delay only by
sending 100 packets/s; packed two per packet they save nothing (a packet's first sample still waits
20 ms + lookahead before it can leave, and playout keeps one fixed delay for all samples), so we do
not use them.

Loss resilience, measured by `make bench` (bench/pesq_bench.py, PESQ-WB of LibriVox speech):
between our handsets each 20 ms packet carries its Opus frame (32 kbit/s, in-band FEC) plus
copies of the frames 1 and 3 packets back, so bursts of up to 3 lost packets are rebuilt
exactly and a 4th from FEC. The jitter buffer waits for copies only while packets are being
lost, and only as long as the losses it saw need: 40 ms for scattered losses (10 % random:
PESQ-WB 4.17), up to 80 ms for bursts; on a clean link it stays within a frame of the network
jitter.

Modules: opus (libopus wrapper: FEC, PLC), mulaw (G.711 + 8 kHz resampling), redundancy (the
0x70 payload: byte layout in its docstring), jitter (the adaptive
JitterBuffer, sans-IO), stats (AudioStats), pipeline (CallAudio).
"""

from vomp.codecs import MULAW, OPUS, OPUS_REDUNDANT, OUR_CODECS, choose_send_codec
from vomp.media.jitter import JitterBuffer, JitterSettings
from vomp.media.opus import OpusSettings
from vomp.media.pipeline import AudioConfig, CallAudio, OutgoingAudio
from vomp.media.stats import AudioStats

__all__ = [
    "MULAW",
    "OPUS",
    "OPUS_REDUNDANT",
    "OUR_CODECS",
    "AudioConfig",
    "AudioStats",
    "CallAudio",
    "JitterBuffer",
    "JitterSettings",
    "OpusSettings",
    "OutgoingAudio",
    "choose_send_codec",
]
