"""Neighbour bookkeeping (SPEC §9): frame de-dup window, packet-seq acks, expiry, our counters."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vomp.neighbours import (
    LINK_TIMEOUT,
    NEIGHBOUR_EXPIRY,
    FrameSeqWindow,
    NeighbourTable,
    PacketSeqAcks,
)


def spec_window(seqs: list[int]) -> list[bool]:
    """§9.2 de-dup, written from the spec text as a list of remembered seqs (the oracle)."""
    newest, seen, out = None, set(), []
    for s in seqs:
        if newest is None:
            newest, out = s, [*out, True]
            continue
        if s == newest or (((newest - 1 - s) % 256) < 64 and s in seen):
            out.append(False)
            continue
        if ((newest - 1 - s) % 256) < 64:
            seen.add(s)
        else:
            window = seen | {newest} if (s - newest - 1) % 256 < 64 else set()
            seen = {x for x in window if (s - 1 - x) % 256 < 64}
            newest = s
        out.append(True)
    return out


def test_first_frame_sets_the_window_and_a_repeat_is_a_duplicate():
    w = FrameSeqWindow()
    assert w.accept(200) and not w.accept(200)


def test_older_frame_inside_the_window_is_accepted_once():
    w = FrameSeqWindow()
    assert w.accept(10) and w.accept(12)
    assert w.accept(11) and not w.accept(11) and not w.accept(10)


def test_window_wraps_past_255():
    w = FrameSeqWindow()
    assert w.accept(254) and w.accept(255) and w.accept(0) and w.accept(1)
    assert not w.accept(255) and not w.accept(254)


def test_a_jump_of_more_than_64_forgets_the_old_frames():
    w = FrameSeqWindow()
    w.accept(0)
    w.accept(100)
    assert w.accept(30) and not w.accept(30)  # d = 69 >= 64: treated as newer, accepted


@settings(max_examples=300)
@given(st.lists(st.integers(0, 255), max_size=80))
def test_window_matches_the_spec_algorithm(seqs):
    w = FrameSeqWindow()
    assert [w.accept(s) for s in seqs] == spec_window(seqs)


def test_first_heard_packet_marks_the_32_before_it():
    acks = PacketSeqAcks()
    acks.heard(1)
    assert (acks.ack_seq, acks.mask) == (1, 0xFFFFFFFF)


def test_lost_packets_show_as_clear_bits():
    acks = PacketSeqAcks()
    acks.heard(10)
    acks.heard(11)
    acks.heard(14)  # 12 and 13 lost
    assert acks.ack_seq == 14
    assert acks.mask & 0b111 == 0b100  # bit0 = 13 (lost), bit1 = 12 (lost), bit2 = 11 (heard)
    acks.heard(12)  # late arrival
    assert acks.mask & 0b111 == 0b110


def test_ack_mask_servald_reads_as_lossless_after_steady_traffic():
    acks = PacketSeqAcks()
    for seq in range(1, 300):
        acks.heard(seq % 256)
    assert acks.mask == 0xFFFFFFFF
    assert 15 - bin(acks.mask & 0x7FFF).count("1") == 0  # servald's drop estimate


def test_neighbours_expire_and_our_seq_counters_count_per_destination():
    table = NeighbourTable(random.Random(1))
    table.heard(b"x" * 32, "addr", interface=3, version=1, seq=5, unicast=True, now=0.0)
    table.heard(b"y" * 32, "addr2", interface=0, version=0, seq=None, unicast=False, now=5.0)
    assert table.get(b"x" * 32).interface == 3
    assert [n.sid for n in table.expire(NEIGHBOUR_EXPIRY)] == [b"x" * 32]
    assert b"y" * 32 in table
    assert [table.next_packet_seq("a") for _ in range(3)] == [0, 1, 2]
    assert table.next_packet_seq("b") == 0


def test_frame_seq_starts_at_a_random_value_and_wraps():
    starts = {NeighbourTable(random.Random(i)).next_frame_seq() for i in range(20)}
    assert len(starts) > 5
    table = NeighbourTable(random.Random(0))
    first = table.next_frame_seq()
    seqs = [table.next_frame_seq() for _ in range(256)]
    assert seqs[-1] == first and all(0 <= s < 256 for s in seqs)


def test_a_peer_silent_longer_than_the_link_timeout_starts_a_fresh_window():
    table = NeighbourTable(random.Random(1))
    sid = b"x" * 32
    peer, _ = table.heard(sid, "a", interface=0, version=1, seq=9, unicast=True, now=0.0)
    assert peer.frames.accept(40)
    # heard again soon: the same window, so a repeat is still a duplicate
    peer, _ = table.heard(sid, "a", interface=0, version=1, seq=10, unicast=True, now=1.0)
    assert not peer.frames.accept(40)
    # after a silence (a restart, say) frame 40 is new again, and acks start over
    later = 1.0 + LINK_TIMEOUT + 0.1
    peer, is_new = table.heard(sid, "a", interface=0, version=1, seq=1, unicast=True, now=later)
    assert not is_new and peer.frames.accept(40)
    assert peer.unicast_acks.ack_seq == 1
