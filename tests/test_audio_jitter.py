"""JitterBuffer on a virtual clock: order, duplicates, late frames, gaps, adaptation, drift."""

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vomp.media.jitter import Action, EncodedFrame, JitterBuffer, JitterSettings

F = 20  # ms per frame


def frame(t: int, *, redundant: bool = False, fec: bool = True) -> EncodedFrame:
    data = t.to_bytes(4, "big", signed=True)
    return EncodedFrame(7, data, F, redundant=redundant, may_carry_fec=fec)


def steady() -> JitterBuffer:
    """A buffer that never removes frames to cut its delay, for tests about order and gaps."""
    return JitterBuffer(JitterSettings(force_shrink_ms=1e9))


def played(p) -> int | None:
    return int.from_bytes(p.frame.data, "big", signed=True) if p.action is Action.PLAY else None


class Call:
    """Frames every 20 ms from a sender, pulls every 20 ms at the receiver (ms clock)."""

    def __init__(self, jb: JitterBuffer | None = None, transit: float = 25.0, phase: float = 7.0):
        self.jb = jb or JitterBuffer()
        self.transit = transit
        self.phase = phase
        self.log: list = []
        self.quiet = True

    def run(self, frames: int, *, start: int = 0, delay=lambda n: 0.0, lose=(), step=F):
        """Send frames start..start+frames-1; returns the playouts in that time span."""
        arrivals = []
        for n in range(start, start + frames):
            if n not in lose:
                arrivals.append((n * F + self.transit + delay(n), n))
        arrivals.sort()
        out = []
        pull = start * step + self.phase + self.transit
        end = (start + frames) * F + self.transit
        while pull < end:
            while arrivals and arrivals[0][0] <= pull:
                at, n = arrivals.pop(0)
                self.jb.put(n * F, frame(n * F), at / 1000)
            out.append(self.jb.pull(pull / 1000, quiet=self.quiet))
            pull += step
        for at, n in arrivals:  # the rest arrives after the last pull of this span
            self.jb.put(n * F, frame(n * F), at / 1000)
        self.log += out
        return out


def test_silence_until_the_first_frame_then_frames_in_order():
    jb = JitterBuffer()
    assert jb.pull(0.0).action is Action.SILENCE
    out = Call(jb).run(50)
    times = [played(p) for p in out if p.action is Action.PLAY]
    assert times == sorted(times) and len(times) >= 48
    assert jb.stats.lost == 0


def test_reordered_frames_are_played_in_media_order():
    jb = steady()
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8]
    for i, n in enumerate(order):
        jb.put(n * F, frame(n * F), i * 0.02)
    jb.put(10 * F, frame(10 * F), 0.2)
    out = [jb.pull(0.3 + i * 0.02) for i in range(10)]
    assert [played(p) for p in out] == [n * F for n in range(10)]


def test_duplicates_are_counted_and_played_once():
    jb = steady()
    for n in range(5):
        jb.put(n * F, frame(n * F), n * 0.02)
        jb.put(n * F, frame(n * F), n * 0.02 + 0.001)
    out = [played(jb.pull(0.1 + i * 0.02)) for i in range(5)]
    jb.put(0, frame(0), 0.3)  # a copy of a frame already played
    assert out == [0, 20, 40, 60, 80]
    assert jb.stats.duplicate == 6


def test_a_frame_after_its_slot_is_late_and_dropped():
    jb = steady()
    jb.put(0, frame(0), 0.0)
    jb.put(40, frame(40), 0.04)
    assert played(jb.pull(0.05)) == 0
    assert jb.pull(0.07).action is Action.FEC  # slot 20 is gone; 40's FEC rebuilds it
    jb.put(20, frame(20), 0.075)
    assert jb.stats.late == 1
    assert played(jb.pull(0.09)) == 40


def test_gap_is_rebuilt_from_the_next_frames_fec_else_concealed():
    jb = steady()
    for n in (0, 2, 5):
        jb.put(n * F, frame(n * F, fec=n != 5), 0.0)
    jb.put(6 * F, frame(6 * F), 0.0)
    actions = [jb.pull(0.2 + i * 0.02) for i in range(7)]
    assert [(p.action, p.media_time_ms) for p in actions] == [
        (Action.PLAY, 0),
        (Action.FEC, 20),
        (Action.PLAY, 40),
        (Action.CONCEAL, 60),
        (Action.CONCEAL, 80),  # 100 is present but cannot carry FEC
        (Action.PLAY, 100),
        (Action.PLAY, 120),
    ]
    assert actions[1].frame == frame(40)
    s = jb.stats
    assert (s.lost, s.recovered_fec, s.concealed) == (3, 1, 2)


def test_a_redundant_copy_fills_the_slot_and_a_late_primary_replaces_it():
    jb = steady()
    jb.put(0, frame(0), 0.0)
    jb.put(20, frame(20, redundant=True), 0.04)
    jb.put(40, frame(40), 0.04)
    jb.put(40, frame(40, redundant=True), 0.06)  # repeats of frames we hold are not duplicates
    assert [played(jb.pull(0.1 + i * 0.02)) for i in range(3)] == [0, 20, 40]
    assert (jb.stats.lost, jb.stats.recovered_redundancy, jb.stats.duplicate) == (1, 1, 0)
    jb2 = steady()
    jb2.put(20, frame(20, redundant=True), 0.0)
    jb2.put(20, frame(20), 0.01)
    assert not jb2.pull(1.0).frame.redundant


def test_running_dry_below_target_waits_for_late_frames_instead_of_losing_them():
    call = Call(transit=25)
    call.quiet = False
    # Every other frame takes 40 ms longer. Without quiet moments the buffer can only grow by
    # running dry: it waits (stretches) while its delay is under the measured jitter.
    call.run(100, delay=lambda n: 40.0 if n % 2 else 0.0)
    s = call.jb.stats
    assert s.stretched >= 2
    assert s.playout_delay_ms >= 40
    lost_early = s.lost
    call.run(200, start=100, delay=lambda n: 40.0 if n % 2 else 0.0)
    assert s.lost == lost_early <= 3 and s.late <= 3


def test_delay_grows_fast_with_jitter_and_shrinks_slowly_after():
    rng = random.Random(7)
    call = Call()
    call.run(250)  # 5 s without jitter
    calm = call.jb.stats.target_delay_ms
    call.run(50, start=250, delay=lambda n: rng.uniform(0, 60))  # 1 s of up to 60 ms jitter
    assert call.jb.stats.target_delay_ms >= calm + 40
    late_in_first_second = call.jb.stats.late
    call.run(250, start=300, delay=lambda n: rng.uniform(0, 60))
    assert call.jb.stats.late - late_in_first_second <= 0.06 * 250  # covers ~95 % once adapted
    jittery = call.jb.stats.playout_delay_ms
    assert jittery >= 40
    call.run(50, start=550)  # calm again: one second later the delay is still there
    assert call.jb.stats.playout_delay_ms >= jittery - 20
    call.run(500, start=600)  # ten seconds later it is back down
    assert call.jb.stats.playout_delay_ms <= calm + F


@pytest.mark.parametrize("ppm", [-2000, 2000])
def test_clock_drift_does_not_grow_the_delay(ppm):
    call = Call()
    call.run(3000, step=F * (1 + ppm * 1e-6))  # 60 s: 120 ms of drift if nothing corrected it
    s = call.jb.stats
    assert s.playout_delay_ms <= 2 * F
    assert s.dropped + s.stretched >= 4
    assert s.concealed <= 2


def test_sender_clock_jump_resyncs_instead_of_waiting():
    jb = JitterBuffer()
    for n in range(10):
        jb.put(n * F, frame(n * F), n * 0.02)
        jb.pull(n * 0.02 + 0.01)
    jb.put(500_000, frame(500_000), 0.2)
    assert jb.stats.resyncs == 1
    out = [jb.pull(0.21 + i * 0.02) for i in range(3)]
    assert 500_000 in [played(p) for p in out]


def test_delay_is_capped():
    jb = JitterBuffer(JitterSettings(max_delay_ms=100))
    jb.put(0, frame(0), 0.0)
    actions = [jb.pull(i * 0.02).action for i in range(30)]
    assert actions.count(Action.STRETCH) <= 100 // F + 1


@given(
    st.lists(
        st.tuples(
            st.integers(-5, 400),  # media slot (negative and far ones included)
            st.floats(0, 5),  # arrival, seconds
            st.booleans(),  # redundant copy
            st.booleans(),  # may carry FEC
        ),
        max_size=120,
    ),
    st.lists(st.floats(0, 5), max_size=120),
    st.lists(st.booleans(), max_size=120),
)
# After a pause (11 pulls, 10 of them dry), a straggler from before the pause must not rewind
# the media time to restart from it.
@example([(1, 0.0, False, False), (0, 2.0, False, False)], [1.0] * 11 + [3.0], [])
def test_any_arrival_pattern_keeps_the_books_and_the_order(arrivals, pulls, quiet):
    jb = JitterBuffer()
    events = [(at, 0, slot, red, fec) for slot, at, red, fec in arrivals]
    events += [(at, 1, i, False, False) for i, at in enumerate(pulls)]
    last_time = None
    for at, kind, n, red, fec in sorted(events):
        if kind == 0:
            jb.put(n * F, frame(n * F, redundant=red, fec=fec), at)
            continue
        p = jb.pull(at, quiet=quiet[n] if n < len(quiet) else False)
        assert p.duration_ms > 0
        if p.media_time_ms is not None:
            if last_time is not None and jb.stats.resyncs == 0:
                assert p.media_time_ms > last_time
            last_time = p.media_time_ms
    s = jb.stats
    assert s.lost == s.recovered_fec + s.recovered_redundancy + s.concealed


def test_a_late_packet_counts_as_jitter_not_as_loss_to_wait_for():
    jb = steady()
    jb.recovery_frames = 4
    for n in (0, 2, 3):
        jb.put(n * F, frame(n * F), n * 0.02)
    jb.put(F, frame(F, redundant=True), 0.04)  # 1's copy, carried by 2
    assert [played(jb.pull(0.045 + i * 0.02)) for i in range(3)] == [0, 20, 40]
    assert jb.recent_loss_fraction > 0
    assert jb.stats.target_delay_ms >= jb.wait_frames * F  # a loss: wait for copies from now on
    jb.put(F, frame(F), 0.1)  # ...but 1's own packet shows up: it was late, not lost
    jb.pull(0.105)
    assert (jb.stats.late, jb.stats.duplicate) == (1, 0)
    assert jb.recent_loss_fraction == 0
    # The target still covers the 80 ms this packet took, but no longer adds a wait for copies.
    assert jb.stats.target_delay_ms < 80 + jb.wait_frames * F


def test_a_sender_that_pauses_is_not_counted_as_losing_everything():
    call = Call()
    call.run(50)
    call.run(100, start=50, lose=set(range(50, 150)))  # 2 s with nothing sent
    s = call.jb.stats
    assert s.pauses == 1
    assert s.lost <= call.jb.settings.pause_after_ms // F + 1
    assert call.log[-1].action is Action.SILENCE
    call.jb.put(70 * F, frame(70 * F), 2.99)  # a straggler from the silent stretch: too late
    assert s.late == 1
    out = call.run(50, start=150)
    assert [played(p) for p in out if p.action is Action.PLAY][:3] == [3000, 3020, 3040]


def paused_after_frames(*media_times: int) -> JitterBuffer:
    """A buffer that played these frames, then concealed until it decided the sender paused."""
    jb = steady()
    for n, t in enumerate(media_times):
        jb.put(t, frame(t), n * 0.02)
    pulls = 0
    while jb.stats.pauses == 0:
        jb.pull(0.03 + pulls * 0.02)
        pulls += 1
    return jb


def test_after_a_pause_a_frame_from_before_it_is_late_not_a_new_start():
    jb = paused_after_frames(0, F, 2 * F)
    jb.put(F // 2, frame(F // 2), 1.0)  # older than the last frame heard
    assert (jb.stats.late, jb.stats.resyncs) == (1, 0)
    assert jb.pull(1.01).action is Action.SILENCE


def test_a_sender_resuming_behind_the_concealed_slots_counts_a_resync():
    jb = paused_after_frames(0, F, 2 * F)  # then slots from 3 F on were concealed
    jb.put(3 * F, frame(3 * F), 1.0)  # its clock stood still while it paused
    out = [jb.pull(1.01 + i * 0.02) for i in range(10)]
    assert [played(p) for p in out if p.action is Action.PLAY][:1] == [3 * F]
    assert jb.stats.resyncs == 1


def test_a_surplus_under_a_frame_is_trimmed_off_in_quiet_moments():
    jb = JitterBuffer()
    for n in range(3):
        jb.put(n * F, frame(n * F), (n * F + 5) / 1000)
    assert jb.pull(0.007).action is Action.PLAY  # starts on target: no surplus
    first = jb.pull(0.039)  # 12 ms later than the target: a surplus under a frame
    assert first.action is Action.PLAY
    assert jb.trim_ms(0.039, 5) == 5  # one period of the 12 ms is kept; whole periods go
    assert jb.trim_ms(0.040, 5) == 0  # at most once per shrink interval
    assert jb.stats.trimmed_ms == 5
