"""The virtual card's own late cycles, read from jackd's log (lab/virtual_audio.py)."""

from __future__ import annotations

from pathlib import Path

from lab.virtual_audio import JackServer, LateCycles

JACKD_LOG = """\
JACK server starting in realtime mode with priority 85
self-connect-mode is "Don't restrict self connect requests"
JackTimedDriver::Process XRun = 73 usec
JackEngine::XRun: client = hs1r2bcap was not finished, state = Running
JackAudioDriver::ProcessGraphAsyncMaster: Process error
JackEngine::XRun: client = hs1r2acap was not finished, state = Triggered
JackEngine::XRun: client = hs1r2player was not finished, state = Triggered
JackEngine::XRun: client hs1r2aplay finished after current callback
JackAudioDriver::ProcessGraphAsyncMaster: Process error
JackTimedDriver::Process XRun = 46 usec
"""


def test_late_cycles_counts_the_card_clock_and_each_cycle_with_late_clients(
    tmp_path: Path,
) -> None:
    server = JackServer(name="handset-bench-test")
    server.log = tmp_path / "jackd.log"
    assert server.late_cycles() == LateCycles(0, 0)  # not started: no log yet
    server.log.write_text(JACKD_LOG)
    assert server.late_cycles() == LateCycles(timer=2, clients=2)
