"""The call CPU bench's split between the handset's work and the virtual card's threads."""

from __future__ import annotations

from lab.two_handsets import CpuReading, _card_seconds


def test_card_threads_are_counted_between_two_readings_of_one_engine() -> None:
    start = CpuReading(1.0, 2.0, 100, {101: 0.5, 102: 0.25})
    end = CpuReading(2.0, 4.0, 100, {101: 0.75, 102: 0.5, 103: 0.125})
    # a thread that started during the call counts whole; one that ended is not left out
    # (its time stays in the engine process's total)
    assert _card_seconds(start, end) == 0.25 + 0.25 + 0.125


def test_nothing_is_left_out_when_a_fresh_engine_process_took_over() -> None:
    start = CpuReading(1.0, 2.0, 100, {101: 0.5})
    end = CpuReading(2.0, 4.0, 200, {201: 0.75})
    assert _card_seconds(start, end) == 0.0
