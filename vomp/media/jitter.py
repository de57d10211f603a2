"""Adaptive jitter buffer keyed on VoMP's rebuilt media time (ms). Sans-IO: the clock comes in.

Theory of operation. Media time T is played when the playout point `next` reaches it; the playout
point moves one frame per `pull`, which the sound card paces. With `now` the receiver's clock at a
pull, `offset = now - next` is how late, in receiver time, media is played; a frame that arrives
at `a` made it if its transit `a - T` is at most `offset` (both carry the same unknown clock
offset between the ends, which cancels). So the buffer keeps recent transits, and steers `offset`
towards a target: a high quantile of those transits (jitter cover) plus, while packets are being
lost, the time the rebuilt copies need to arrive.

How long to wait for copies is the buffer's choice, made from the losses it has seen. A lost
frame can be rebuilt from the packets 1 frame later (Opus FEC, and the redundant payload's first
copy), and from later ones (the payload's other copies, and the FEC inside them): waiting
`w` frames buys every source at most `w` frames later. Replaying the last `wait_window` slots'
own-packet losses, the buffer waits the fewest frames that would have left at most
`unrecovered_target` of those slots unrebuilt (`recovery_frames`, the deepest wait the sender's
payload offers, caps it). Scattered losses need 1-2 frames; bursts need the deep copies.

* Fast up: while the delay is below target, a missing frame is waited for (concealment plays
  *without* advancing: the frame is probably late, not lost), and with the frame there a quiet
  moment is stretched by one frame. At or above target, a missing frame is lost.
* Slow down: the quantile window forgets spikes after a few seconds, and the buffer removes at most
  one frame per `shrink_interval_ms`, in a quiet moment, only when a whole frame is surplus.
  A surplus smaller than a frame (a stretch that overshot, or the start's phase) is won back by
  the caller skipping that much of a quiet frame's sound (`trim_ms`), at the same rate.
* Clock drift between the two sound cards shows up as transits creeping up or down against the
  pulls; the same steering removes or inserts frames in silence, so the delay does not grow.
* Quiet moments come from the caller: `pull(now, quiet=True)` says the last frame played was
  near-silent, so skipping or repeating one now is inaudible.

A packet that arrives after its slot was played counts as late (jitter, which the quantile
covers), and its slot no longer counts as a loss that makes the buffer wait for copies.

When nothing at all arrives for `pause_after_ms`, the sender has paused: the buffer plays
silence without counting loss and starts afresh on the next frame. Media time never goes back
unless counted as a resync: while paused, a frame from before the last one heard is a straggler
(late); a sender whose clock stood still during the pause resumes behind the slots concealed
before the buffer gave up, and restarting there is counted as a resync.

A gap (frame missing while later ones are buffered) is lost: it is rebuilt from the next frame's
Opus FEC if that frame is here (`Action.FEC`), else concealed (`Action.CONCEAL`). Frames carried as
redundancy fill slots before they are needed, so they need no action of their own.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from dataclasses import dataclass

from vomp.media.stats import AudioStats


class Action(enum.Enum):
    PLAY = "play"  # decode `frame`, the slot's own (or redundant) copy
    FEC = "fec"  # the slot is lost; rebuild it from `frame`'s (the next frame's) FEC
    CONCEAL = "conceal"  # the slot is lost; run PLC
    STRETCH = "stretch"  # insert PLC without consuming a slot (underrun, or growing the delay)
    SILENCE = "silence"  # not playing: nothing has arrived yet, or the sender paused


@dataclass(frozen=True)
class EncodedFrame:
    codec: int
    data: bytes
    duration_ms: int
    redundant: bool = False
    """True when this copy came from a later packet's redundancy, not its own packet."""
    may_carry_fec: bool = False
    """True when this frame can rebuild the one before it (Opus SILK/hybrid in-band FEC)."""


@dataclass(frozen=True)
class Playout:
    action: Action
    duration_ms: int
    media_time_ms: int | None = None
    frame: EncodedFrame | None = None


@dataclass(frozen=True)
class JitterSettings:
    frame_ms: int = 20
    quantile: float = 0.95
    """Share of packets the delay covers."""
    window: int = 150
    """Transits remembered for the quantile (3 s of 20 ms frames: how fast spikes are forgotten)."""
    margin_ms: float = 2.0
    """Slack above the quantile, for jitter in the pull times themselves."""
    loss_window: int = 250
    """Slots over which recent loss is judged (5 s): any loss in it makes the buffer wait."""
    wait_window: int = 1000
    """Slots (20 s) of losses from which the buffer picks how long to wait for copies."""
    unrecovered_target: float = 0.002
    """Share of slots the chosen wait may leave unrebuilt (concealed). About 1 % concealed
    costs 0.3 PESQ-WB (bench/pesq_bench.py); 0.2 % is below what a listener notices."""
    max_delay_ms: int = 400
    """The buffer never holds back more than this; stretches stop, far frames resync."""
    shrink_interval_ms: int = 500
    shrink_hysteresis_ms: float = 5.0
    force_shrink_ms: float = 100.0
    trim_above_ms: float = 3.0
    """A surplus of at least this much (and under a frame) is trimmed off in a quiet moment."""
    """Surplus delay so large that a frame is removed even in speech."""
    resync_ms: int = 2000
    """A frame this far from the playout point means the sender's clock jumped: start over."""
    pause_after_ms: int = 200
    """Nothing at all buffered for this long: the sender has paused (hold, a stalled capture
    device, silence suppression). Play silence, stop counting loss, restart on the next frame."""


class JitterBuffer:
    """Reorders frames by media time and says, for each pull, what the decoder must produce."""

    def __init__(self, settings: JitterSettings | None = None, stats: AudioStats | None = None):
        self.settings = settings or JitterSettings()
        self.stats = stats or AudioStats()
        self.recovery_frames = 1
        """The deepest wait for copies worth anything, in frames (set by the pipeline)."""
        self.copy_offsets: tuple[int, ...] = ()
        """How many frames after its own packet each copy of a frame travels (the redundant
        payload's offsets; set by the pipeline)."""
        self.fec = True
        """Whether a frame carries FEC for the one before it (Opus; set by the pipeline)."""
        self.wait_frames = 1
        """The wait for copies the buffer chose from the losses it saw (<= recovery_frames)."""
        self._frames: dict[int, EncodedFrame] = {}
        self._next: int | None = None
        self._paused_at: int | None = None
        """The playout point a pause stopped at (concealed slots included)."""
        self._played: deque[int] = deque(maxlen=64)
        self._transits: deque[float] = deque()
        self._sorted_transits: list[float] = []
        self._last_transit: float | None = None
        self._slots = 0  # media slots played or lost so far
        self._lost_slots: deque[tuple[int, int]] = deque()  # (slot number, media time) of losses
        self._last_shrink_ms = -1e18
        self._dry_ms = 0  # how long the buffer has been empty while playing
        self._frame_ms = self.settings.frame_ms
        self._surplus_ms = 0.0

    # ----------------------------------------------------------------- input
    def put(self, media_time_ms: int, frame: EncodedFrame, now: float) -> None:
        """Accept one frame that arrived at `now` (seconds, the receiver's monotonic clock)."""
        now_ms = now * 1000
        s = self.stats
        playout_point = self._next if self._next is not None else self._paused_at
        if (
            playout_point is not None
            and abs(media_time_ms - playout_point) > self.settings.resync_ms
        ):
            if frame.redundant:
                return
            self._resync()
        held = self._frames.get(media_time_ms)
        if not frame.redundant:
            played_own = media_time_ms in self._played and not self._was_lost(media_time_ms)
            if played_own or (held is not None and not held.redundant):
                s.duplicate += 1
                return
            self._note_transit(now_ms - media_time_ms)
            self._frame_ms = frame.duration_ms
        if self._is_late(media_time_ms, now_ms, frame.redundant):
            if not frame.redundant:
                s.late += 1
                self._forget_loss(media_time_ms)
            return
        if held is None or (held.redundant and not frame.redundant):
            self._frames[media_time_ms] = frame

    def _is_late(self, media_time_ms: int, now_ms: float, redundant: bool) -> bool:
        if self._next is not None:
            return media_time_ms < self._next
        if self._played and media_time_ms <= max(self._played):
            return True  # a straggler from before the pause
        # Not playing (before the first frame, or paused): a frame whose transit is far beyond
        # anything the buffer would wait for is a straggler from before, not the new start.
        limit = self._target_transit() + self.settings.max_delay_ms
        return not redundant and now_ms - media_time_ms > limit

    # ----------------------------------------------------------------- output
    def pull(self, now: float, quiet: bool = False) -> Playout:
        """What to play for the next frame of output, as the sound card asks for it."""
        now_ms = now * 1000
        if self._next is None and not self._start(now_ms):
            return Playout(Action.SILENCE, self._frame_ms)
        assert self._next is not None
        surplus = (now_ms - self._next) - self._target_transit()
        self._surplus_ms = surplus
        self._update_gauges(now_ms)
        frame = self._frames.get(self._next)

        if frame is not None and self._should_shrink(now_ms, surplus, quiet):
            self._consume(self._next, frame)
            self.stats.dropped += 1
            self._last_shrink_ms = now_ms
            frame = self._frames.get(self._next)
            surplus -= frame.duration_ms if frame else self._frame_ms

        if frame is not None:
            if surplus < 0 and quiet and self._may_stretch(now_ms):
                self.stats.stretched += 1
                return Playout(Action.STRETCH, self._frame_ms)
            return self._play(frame)

        later = [t for t in self._frames if t > self._next]
        # Below target, a missing frame is more likely late (or overtaken) than lost: wait for
        # it, which grows the delay by a frame. At or above target it is lost.
        if surplus < 0 and self._may_stretch(now_ms):
            self.stats.stretched += 1
            return Playout(Action.STRETCH, self._frame_ms)
        if later:
            self._dry_ms = 0
            return self._lose(min(later))
        self._dry_ms += self._frame_ms
        if self._dry_ms > self.settings.pause_after_ms:
            self._pause()
            return Playout(Action.SILENCE, self._frame_ms)
        return self._lose(None)

    # ----------------------------------------------------------------- steering
    def _target_transit(self) -> float:
        """The offset the buffer steers towards (ms, in the transit's clock space)."""
        if not self._sorted_transits:
            return 0.0
        k = min(len(self._sorted_transits) - 1, int(self.settings.quantile * len(self._transits)))
        wait = min(self.wait_frames, self.recovery_frames) * self._frame_ms
        return self._sorted_transits[k] + self.settings.margin_ms + (wait if self._losing() else 0)

    def _losing(self) -> bool:
        """Whether copies are worth waiting for: packets were lost lately."""
        return self._recent_loss_count() > 0

    def _recent_loss_count(self) -> int:
        oldest = self._slots - max(self.settings.loss_window, self.settings.wait_window)
        while self._lost_slots and self._lost_slots[0][0] <= oldest:
            self._lost_slots.popleft()
        recent = self._slots - self.settings.loss_window
        return sum(1 for slot, _ in self._lost_slots if slot > recent)

    def _note_slot(self, media_time_ms: int, lost: bool) -> None:
        if lost:
            self._lost_slots.append((self._slots, media_time_ms))
        self._slots += 1
        if lost or self._slots % 50 == 0:
            self.wait_frames = self._choose_wait()

    def _sources(self, wait: int) -> list[int]:
        """Slots after a lost one whose packets can rebuild it, at most `wait` frames later."""
        found = {o for o in self.copy_offsets if o <= wait}
        if self.fec:
            found |= {1 + o for o in (0, *self.copy_offsets) if 1 + o <= wait}
        return sorted(found)

    def _choose_wait(self) -> int:
        """The fewest frames of waiting that would have rebuilt all but `unrecovered_target` of
        the recent slots (replaying the own-packet losses seen over `wait_window`)."""
        lost = {slot for slot, _ in self._lost_slots}
        allowed = self.settings.unrecovered_target * min(self._slots, self.settings.wait_window)
        for wait in range(1, self.recovery_frames):
            sources = self._sources(wait)
            if not sources:
                continue
            unrecovered = sum(
                1
                for slot in lost
                if slot + sources[-1] < self._slots and all(slot + k in lost for k in sources)
            )
            if unrecovered <= allowed:
                return wait
        return self.recovery_frames

    def _was_lost(self, media_time_ms: int) -> bool:
        return any(t == media_time_ms for _, t in self._lost_slots)

    def _forget_loss(self, media_time_ms: int) -> None:
        """A packet came after its slot: that was jitter (the quantile's job), not loss."""
        for entry in self._lost_slots:
            if entry[1] == media_time_ms:
                self._lost_slots.remove(entry)
                return

    def trim_ms(self, now: float, pull_every_ms: float) -> int:
        """Whole ms of the quiet frame just pulled that the caller should skip (0: none).

        For a surplus under a frame, which whole-frame shrinking cannot remove: skipping `n` ms
        of sound makes later pulls come `n` ms sooner, so the surplus falls by `n`. Pulls come
        every `pull_every_ms` (the caller's period), so the surplus is only known to within a
        period: one period of it is kept, and only whole periods are skipped."""
        now_ms = now * 1000
        surplus = self._surplus_ms - pull_every_ms
        if self._next is None or not self.settings.trim_above_ms <= surplus < self._frame_ms:
            return 0
        if now_ms - self._last_shrink_ms < self.settings.shrink_interval_ms:
            return 0
        trim = int(surplus // pull_every_ms * pull_every_ms)
        if trim <= 0:
            return 0
        self._last_shrink_ms = now_ms
        self._surplus_ms = 0.0
        self.stats.trimmed_ms += trim
        return trim

    def _should_shrink(self, now_ms: float, surplus: float, quiet: bool) -> bool:
        if surplus >= self.settings.force_shrink_ms:
            return now_ms - self._last_shrink_ms >= self.settings.shrink_interval_ms
        if not quiet or surplus < self._frame_ms + self.settings.shrink_hysteresis_ms:
            return False
        return now_ms - self._last_shrink_ms >= self.settings.shrink_interval_ms

    def _may_stretch(self, now_ms: float) -> bool:
        assert self._next is not None
        return now_ms - self._next - self._min_transit() < self.settings.max_delay_ms

    def _min_transit(self) -> float:
        return self._sorted_transits[0] if self._sorted_transits else 0.0

    # ----------------------------------------------------------------- helpers
    def _start(self, now_ms: float) -> bool:
        if not self._frames:
            return False
        first = min(self._frames)
        if now_ms - first < self._target_transit():
            return False
        if self._paused_at is not None and first < self._paused_at:
            self.stats.resyncs += 1  # the sender resumes behind the slots concealed
        self._next = first
        self._paused_at = None
        return True

    def _pause(self) -> None:
        self.stats.pauses += 1
        self._paused_at = self._next
        self._next = None
        self._dry_ms = 0

    def _resync(self) -> None:
        self.stats.resyncs += 1
        self._frames.clear()
        self._played.clear()
        self._next = None
        self._paused_at = None
        self._transits.clear()
        self._sorted_transits.clear()
        self._last_transit = None

    def _note_transit(self, transit: float) -> None:
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self.stats.jitter_ms += (d - self.stats.jitter_ms) / 16
        self._last_transit = transit
        self._transits.append(transit)
        bisect.insort(self._sorted_transits, transit)
        if len(self._transits) > self.settings.window:
            old = self._transits.popleft()
            del self._sorted_transits[bisect.bisect_left(self._sorted_transits, old)]

    def _consume(self, media_time_ms: int, frame: EncodedFrame | None) -> None:
        del self._frames[media_time_ms]
        self._played.append(media_time_ms)
        assert self._next is not None
        self._next = media_time_ms + (frame.duration_ms if frame else self._frame_ms)
        for t in [t for t in self._frames if t < self._next]:
            del self._frames[t]  # overlapped by a longer frame

    def _play(self, frame: EncodedFrame) -> Playout:
        assert self._next is not None
        self._dry_ms = 0
        t = self._next
        self._consume(t, frame)
        self._note_slot(t, frame.redundant)
        if frame.redundant:
            self.stats.lost += 1
            self.stats.recovered_redundancy += 1
        else:
            self.stats.frames_played += 1
        return Playout(Action.PLAY, frame.duration_ms, t, frame)

    def _lose(self, next_time: int | None) -> Playout:
        assert self._next is not None
        t = self._next
        gap = self._frame_ms if next_time is None else min(self._frame_ms, next_time - t)
        self._next = t + gap
        self._note_slot(t, True)
        self.stats.lost += 1
        following = self._frames.get(self._next)
        if following is not None and following.may_carry_fec and gap == self._frame_ms:
            self.stats.recovered_fec += 1
            return Playout(Action.FEC, gap, t, following)
        self.stats.concealed += 1
        return Playout(Action.CONCEAL, gap, t)

    @property
    def recent_loss_fraction(self) -> float:
        """Share of the last `loss_window` slots whose own packet was missing."""
        slots = min(self._slots, self.settings.loss_window)
        return self._recent_loss_count() / slots if slots else 0.0

    def _update_gauges(self, now_ms: float) -> None:
        assert self._next is not None
        s = self.stats
        s.buffer_ms = max((t + f.duration_ms for t, f in self._frames.items()), default=self._next)
        s.buffer_ms -= self._next
        s.playout_delay_ms = now_ms - self._next - self._min_transit()
        s.target_delay_ms = self._target_transit() - self._min_transit()
