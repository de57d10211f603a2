"""The HT station-reset notice: its frame, and the manager sending and acting on it (fake kernel).

On the real kernel (hwsim, Debian's mac80211) it runs in tests/vm/test_mesh_heal.py.
"""

import asyncio
import errno

from hypothesis import example, given
from hypothesis import strategies as st

from hw.mesh import MeshConfig, MeshManager
from hw.mesh.fake import FakeMeshBackend
from hw.mesh.station_reset import ETH_P_STATION_RESET, MAGIC, notice_frame, notice_sender

IDENTITY = bytes(range(32))
NEIGHBOUR = "02:00:00:00:02:00"


def manager_with_radio(**config) -> tuple[MeshManager, FakeMeshBackend]:
    backend = FakeMeshBackend()
    backend.add_radio("wlan0", "02:00:00:00:01:00")
    return MeshManager(MeshConfig(backend="fake", **config), backend, IDENTITY), backend


def test_a_notice_round_trips_to_its_senders_mac():
    frame = notice_frame("02:AA:bb:cc:dd:ee")
    assert frame[:6] == b"\xff" * 6 and frame[12:14] == ETH_P_STATION_RESET.to_bytes(2, "big")
    assert notice_sender(frame) == "02:aa:bb:cc:dd:ee"
    assert notice_sender(frame + b"\0" * 20) == "02:aa:bb:cc:dd:ee"  # Ethernet padding


def test_frames_that_are_not_notices_are_refused():
    frame = notice_frame(NEIGHBOUR)
    assert notice_sender(frame[:-1]) is None
    assert notice_sender(frame[:12] + b"\x08\x06" + frame[14:]) is None  # another ethertype
    assert notice_sender(frame[:14] + b"x" + frame[15:]) is None  # another magic
    assert notice_sender(frame[:6] + b"\x01" + frame[7:]) is None  # a group source address
    assert notice_sender(frame[:6] + b"\0" * 6 + frame[12:]) is None


@given(st.binary(max_size=80))
@example(b"\xff" * 6 + bytes.fromhex("020000000200") + b"\x88\xb5" + MAGIC[:-1])
def test_the_parser_is_total(frame):
    sender = notice_sender(frame)
    assert sender is None or frame[14:].startswith(MAGIC)


def test_a_join_with_ht_tells_the_neighbours_and_one_without_does_not():
    async def scenario(ht: bool) -> list:
        manager, kernel = manager_with_radio(ht=ht)
        await manager.converge()
        await manager.converge()  # nothing re-joined: nothing sent again
        kernel.reset_radio("wlan0")
        await manager.converge()
        return kernel.station_resets_sent

    assert asyncio.run(scenario(True)) == [("wlan0", "02:00:00:00:01:00")] * 2
    assert asyncio.run(scenario(False)) == []


def test_an_ibss_leave_reset_is_announced_too():
    async def scenario() -> list:
        manager, kernel = manager_with_radio(ht=True)
        await manager.converge()
        kernel.drop_out_of_ibss("wlan0")
        await manager.converge()
        return kernel.station_resets_sent

    assert len(asyncio.run(scenario())) == 2


def test_a_notice_deletes_the_senders_station_and_the_heal_record_says_so():
    async def scenario():
        manager, kernel = manager_with_radio(ht=True)
        await manager.converge()
        await manager.station_reset_heard(notice_frame(NEIGHBOUR))
        return manager, kernel

    manager, kernel = asyncio.run(scenario())
    radio = kernel.link_named("wlan0")
    assert kernel.deleted_stations == [(radio.ifindex, NEIGHBOUR)]
    assert manager.status.station_resets == 1
    assert manager.status.last_heal == f"station of {NEIGHBOUR} reset"


def test_malformed_and_own_notices_change_nothing():
    async def scenario():
        manager, kernel = manager_with_radio(ht=True)
        await manager.converge()
        await manager.station_reset_heard(b"\xff" * 14 + b"garbage")
        await manager.station_reset_heard(notice_frame("02:00:00:00:01:00"))
        return manager, kernel

    manager, kernel = asyncio.run(scenario())
    assert kernel.deleted_stations == []
    assert manager.status.station_notices_ignored == 1 and manager.status.station_resets == 0


def test_one_mac_is_reset_at_most_once_per_two_seconds(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("hw.mesh.manager.time.monotonic", lambda: clock[0])

    async def scenario():
        manager, kernel = manager_with_radio(ht=True)
        await manager.converge()
        for _ in range(3):  # the three copies of one notice, and a hostile flood alike
            await manager.station_reset_heard(notice_frame(NEIGHBOUR))
        await manager.station_reset_heard(notice_frame("02:00:00:00:03:00"))
        clock[0] += 2.5
        await manager.station_reset_heard(notice_frame(NEIGHBOUR))
        return manager, kernel

    manager, kernel = asyncio.run(scenario())
    assert [mac for _, mac in kernel.deleted_stations] == [
        NEIGHBOUR,
        "02:00:00:00:03:00",
        NEIGHBOUR,
    ]
    assert manager.status.station_resets == 3 and manager.status.station_notices_ignored == 2


def status_after_a_notice_whose_delete_fails(monkeypatch, error: Exception):
    """The HT manager's status once it heard a neighbour's notice and the kernel refused to
    delete the station with `error`."""

    async def fail(radio_ifindex: int, mac: str) -> None:
        raise error

    async def scenario():
        manager, kernel = manager_with_radio(ht=True)
        await manager.converge()
        monkeypatch.setattr(kernel, "delete_station", fail)
        await manager.station_reset_heard(notice_frame(NEIGHBOUR))
        return manager.status

    return asyncio.run(scenario())


def test_a_refused_delete_is_not_counted(monkeypatch):
    refused = OSError(errno.EOPNOTSUPP, "no IBSS station deletion")
    assert status_after_a_notice_whose_delete_fails(monkeypatch, refused).station_resets == 0


def test_a_neighbour_without_a_station_yet_is_not_an_error(monkeypatch):
    from pyroute2.netlink.exceptions import NetlinkError

    status = status_after_a_notice_whose_delete_fails(monkeypatch, NetlinkError(errno.ENOENT))
    assert status.station_resets == 0 and status.errors == 0


def test_the_running_manager_listens_with_ht_only():
    async def scenario(ht: bool):
        manager, kernel = manager_with_radio(ht=ht, poll_interval_s=0.05)
        task = asyncio.create_task(manager.run())
        try:
            for _ in range(100):
                if manager.status.ready:
                    break
                await asyncio.sleep(0.01)
            kernel.heard_on_radio.put_nowait(notice_frame(NEIGHBOUR))
            await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return kernel.deleted_stations

    assert [mac for _, mac in asyncio.run(scenario(True))] == [NEIGHBOUR]
    assert asyncio.run(scenario(False)) == []
