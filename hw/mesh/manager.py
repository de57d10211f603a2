"""The mesh manager: keeps the radio in the IBSS, bat0 on top of it and an address on bat0.

It is a loop around the pure planner in `reconcile`: observe the kernel, plan, apply, repeat
until nothing is left to do; then sleep until netlink reports a change (or a poll interval
passes) and do it again. That one loop is both the start-up and the repair path, which is why
a radio reset or a vanished interface needs no special code and no service restart.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Interface
from itertools import islice

from pyroute2.netlink.exceptions import NetlinkError

from hw.mesh.addressing import candidate_addresses, mesh_mac
from hw.mesh.arp_probe import mac_bytes
from hw.mesh.backend import AddAddress, MeshBackend, RemoveAddress, make_backend
from hw.mesh.batadv import Neighbour, Originator
from hw.mesh.config import MeshConfig
from hw.mesh.reconcile import (
    JOINING,
    ClaimAddress,
    CreateMesh,
    DesiredMesh,
    Ibss,
    JoinIbss,
    Observed,
    Plan,
    SetLinkUp,
    SetMtu,
    SetRadioType,
    plan,
)
from hw.mesh.station_reset import notice_sender

log = logging.getLogger(__name__)

# Addresses probed before giving up; each taken one is a hash collision, so 8 is plenty.
MAX_ADDRESS_CANDIDATES = 8
MAX_ROUNDS = 8
RETRY_FIRST_S = 0.5
JOIN_SETTLE_S = 15.0  # how long converge waits for mac80211 to finish an IBSS join
KERNEL_ERRORS = (OSError, NetlinkError)
# After this handset kept a contested address, probe again this soon to see the other one moved.
CONFLICT_RECHECK_S = 3.0
# New originators trigger a probe at most this often: while a big mesh boots, nodes appear for a
# minute, and every probe is three ARP broadcasts that batman-adv floods through the whole mesh.
MERGE_PROBE_SPACING_S = 15.0
# A neighbour's station is deleted at most this often, so a hostile sender cannot make it churn.
STATION_RESET_SPACING_S = 2.0


@dataclass(frozen=True)
class BroadcastEndpoint:
    """Where the UDP transport binds and what it broadcasts to (servald's subnet broadcast)."""

    ifname: str
    address: IPv4Address
    broadcast: IPv4Address
    prefixlen: int


@dataclass
class MeshStatus:
    ready: bool = False
    waiting_for: str | None = "not started"
    address: IPv4Interface | None = None
    radio: str | None = None
    joins: int = 0  # IBSS joins; more than one means the manager repaired the mesh
    observations: int = 0  # kernel state reads; climbing fast at rest would mean event churn
    errors: int = 0
    last_error: str | None = None
    warning: str | None = None  # a degraded but working setup, e.g. a radio capped at MTU 1500
    heals: int = 0  # times the mesh was broken here and became whole again
    last_heal_at: float | None = None  # wall-clock time (time.time()) it was whole again
    last_heal_s: float | None = None  # how long it took, from noticing the break
    last_heal: str | None = None  # what was repaired
    address_conflicts: int = 0  # another handset answered for our address (partitions merged)
    station_resets: int = 0  # neighbours' stations deleted on their reset notice (HT only)
    station_notices_ignored: int = 0  # malformed, or too soon after the last one from that MAC

    def report(self) -> dict:
        """The status as JSON-able values, for the daemon's status and the status file."""
        values = asdict(self)
        values["address"] = str(self.address) if self.address is not None else None
        return values


class StepFailed(RuntimeError):
    """The kernel refused one step; the message names the step and the kernel's error."""


class AddressExhausted(RuntimeError):
    """Every candidate address for this handset answered an ARP probe."""


class MeshManager:
    def __init__(
        self,
        config: MeshConfig,
        backend: MeshBackend | None = None,
        identity: bytes | None = None,
    ) -> None:
        """`identity`: the handset's SID bytes; without it the radio's MAC stands in."""
        self.config = config
        self.backend = backend if backend is not None else make_backend(config)
        self.identity = identity
        self.status = MeshStatus()
        # Some radios (the Pi's brcmfmac) cap the MTU at 1500: then batman-adv fragments, and
        # the mesh must come up anyway rather than fail on the MTU step forever.
        self._mtu_refused = False
        self._converging = asyncio.Lock()
        self._was_ready = False
        self._broken: tuple[float, str] | None = None  # (monotonic time noticed, what broke)
        self._mesh_ifindex: int | None = None
        self._avoid: set[IPv4Address] = set()  # addresses another handset won from us
        self._originators: set[str] | None = None  # last seen in the watch; None: not yet
        self._next_address_check = 0.0
        self._last_probe: float | None = None
        self._merge_pending = False
        self._conflict_kept_since: float | None = None  # we kept a contested address
        self._radio_ifindex: int | None = None
        self._radio_mac: str | None = None
        self._notice_due = False  # joined with HT: tell the neighbours once the join is done
        self._station_reset_at: dict[str, float] = {}  # neighbour MAC -> when we deleted it

    async def run(self) -> None:
        """Keep the mesh up until cancelled: the repair loop and the merge watch, side by side."""
        await asyncio.gather(self._repair_loop(), self._watch_loop(), self._notice_loop())

    async def _repair_loop(self) -> None:
        """Converge, then sleep until the kernel reports a change or the poll interval passes.

        After a refused step the kernel may send no further event (the step raced with someone
        else's change), so retries come on their own: 0.5 s, then doubling up to the poll interval.
        """
        retry = RETRY_FIRST_S
        while True:
            errors = self.status.errors
            await self.converge()
            if self.status.errors == errors:
                retry = RETRY_FIRST_S
                await self.backend.wait_for_change(self.config.poll_interval_s)
            else:
                await self.backend.wait_for_change(min(retry, self.config.poll_interval_s))
                retry *= 2

    async def _watch_loop(self) -> None:
        if self.config.mode == "unmanaged":
            return
        while True:
            await asyncio.sleep(self.config.watch_interval_s)
            try:
                await self.watch()
            except (*KERNEL_ERRORS, RuntimeError) as error:  # BatadvError: module unloaded
                log.warning("mesh: watching for merges failed: %s", error)

    async def _notice_loop(self) -> None:
        """With HT, listen on the radio for neighbours' station-reset notices."""
        if self.config.mode == "unmanaged" or not self.config.ht:
            return
        while True:
            radio = self.status.radio
            if radio is None:
                await asyncio.sleep(RETRY_FIRST_S)
                continue
            try:
                frame = await self.backend.receive_station_reset(radio, self.config.poll_interval_s)
            except KERNEL_ERRORS as error:  # the radio went down or away: listen again soon
                log.debug("mesh: listening for station resets on %s: %s", radio, error)
                await asyncio.sleep(RETRY_FIRST_S)
                continue
            if frame is not None:
                await self.station_reset_heard(frame)

    async def station_reset_heard(self, frame: bytes) -> None:
        """A neighbour's radio was reset: drop our station entry for it, whose block-ack window
        would otherwise drop its restarted sequence numbers for tens of seconds."""
        sender = notice_sender(frame)
        if sender is None:
            self.status.station_notices_ignored += 1
            return
        if self._radio_mac is not None and sender == self._radio_mac.lower():
            return
        now = time.monotonic()
        last = self._station_reset_at.get(sender)
        if last is not None and now - last < STATION_RESET_SPACING_S:
            self.status.station_notices_ignored += 1
            return
        if len(self._station_reset_at) >= 64:
            self._station_reset_at = {
                mac: at
                for mac, at in self._station_reset_at.items()
                if now - at < STATION_RESET_SPACING_S
            }
        self._station_reset_at[sender] = now
        if self._radio_ifindex is None:
            return
        try:
            await self.backend.delete_station(self._radio_ifindex, sender)
        except KERNEL_ERRORS as error:
            code = error.code if isinstance(error, NetlinkError) else error.errno
            if code == errno.ENOENT:  # no station for it yet: nothing stale to drop
                return
            log.warning("mesh: cannot reset the station of %s: %s", sender, error)
            return
        self.status.station_resets += 1
        self._healed(now, f"station of {sender} reset")

    async def _send_station_reset(self) -> None:
        radio, mac = self.status.radio, self._radio_mac
        if radio is None or mac is None:
            return
        self._notice_due = False
        try:
            await self.backend.send_station_reset(radio, mac)
        except KERNEL_ERRORS as error:
            log.warning("mesh: cannot send the station-reset notice on %s: %s", radio, error)

    async def watch(self) -> None:
        """Probe our address for a duplicate when partitions merged (batman-adv shows originators
        it did not know) or the check interval passed, and settle a duplicate without a human:
        of the two handsets the one with the greater bat0 MAC moves, so exactly one side does."""
        address = self.status.address
        if not self.status.ready or address is None or self.identity is None:
            return
        cfg = self.config
        known = {o.address for o in await self.backend.originators(cfg.mesh_interface)}
        now = time.monotonic()
        if self._originators is not None and known - self._originators:
            self._merge_pending = True  # partitions merged
        self._originators = known
        spaced = self._last_probe is None or now >= self._last_probe + MERGE_PROBE_SPACING_S
        if not (self._merge_pending and spaced) and now < self._next_address_check:
            return
        merged, self._merge_pending = self._merge_pending, False
        self._last_probe = now
        self._next_address_check = now + cfg.address_check_interval_s
        own_mac = mesh_mac(self.identity)
        holder = await self.backend.address_holder(
            cfg.mesh_interface, address.ip, own_mac, held=True
        )
        if holder is None:
            other_moved = self._conflict_kept_since is not None
            if self._conflict_kept_since is not None:
                self._healed(
                    self._conflict_kept_since, "duplicate address: the other handset moved"
                )
                self._conflict_kept_since = None
            if merged or other_moved:
                # A handset that held our address in the other partition may have moved before
                # we probed; ARP caches that learned its MAC for our address must learn ours.
                await self.backend.announce(cfg.mesh_interface, address.ip, own_mac)
            return
        if self._conflict_kept_since is None:  # a new duplicate, not the one we wait out
            self.status.address_conflicts += 1
        if own_mac.lower() < holder.lower():
            log.warning("mesh: %s is also held by %s; it moves, we keep it", address.ip, holder)
            self._conflict_kept_since = self._conflict_kept_since or now
            self._next_address_check = now + CONFLICT_RECHECK_S
            await self.backend.announce(cfg.mesh_interface, address.ip, own_mac)
            self._write_status_file()
            return
        log.warning("mesh: %s is also held by %s; moving to the next address", address.ip, holder)
        self._avoid.add(address.ip)
        async with self._converging:
            self._broken = (now, f"duplicate address {address.ip}: moved")
            if self._mesh_ifindex is not None:
                await self.backend.apply(RemoveAddress(self._mesh_ifindex, address))
            # Our last word on it: while both held it, our ARP traffic re-pointed neighbours'
            # caches at us, and the holder may have announced before we left.
            await self.backend.announce(cfg.mesh_interface, address.ip, own_mac, holder=holder)
        await self.converge()

    async def converge(self) -> MeshStatus:
        """Observe, plan and apply until the plan is empty, a step fails or MAX_ROUNDS pass."""
        if self.config.mode == "unmanaged":
            await self._find_unmanaged_endpoint()
            return self.status
        async with self._converging:
            await self._converge()
        if self._notice_due and self.status.ready:
            await self._send_station_reset()
        self._write_status_file()
        return self.status

    async def _converge(self) -> None:
        loop = asyncio.get_running_loop()
        rounds, settle_deadline = 0, None
        while rounds < MAX_ROUNDS:
            try:
                done = await self._round()
            except (*KERNEL_ERRORS, StepFailed, AddressExhausted) as error:
                self.status.errors += 1
                self.status.last_error = f"{type(error).__name__}: {error}"
                self.status.ready = False
                log.warning("mesh: %s; will retry", self.status.last_error)
                break
            if not done:
                rounds += 1
                continue
            if self.status.waiting_for != JOINING:
                break
            # An IBSS join completes in the kernel: wait for its event rather than act again.
            settle_deadline = settle_deadline or loop.time() + JOIN_SETTLE_S
            remaining = settle_deadline - loop.time()
            if remaining <= 0:
                break
            await self.backend.wait_for_change(remaining)

    async def inspect(self) -> MeshStatus:
        """Fill the status from what the kernel holds, changing nothing (diagnostics)."""
        if self.config.mode == "unmanaged":
            await self._find_unmanaged_endpoint()
            return self.status
        _, steps = await self._look()
        if steps is not None and not self.status.ready and steps.waiting_for is None:
            pending = ", ".join(type(action).__name__ for action in steps.actions)
            self.status.waiting_for = f"would still do: {pending}"
        return self.status

    async def _look(self) -> tuple[DesiredMesh | None, Plan | None]:
        """Observe the kernel, plan, and record what was seen in the status."""
        cfg = self.config
        observed = await self.backend.observe(cfg.radio, cfg.mesh_interface)
        self.status.observations += 1
        desired = self._desired(observed)
        if desired is None:
            self._record(observed, ready=False, waiting_for="no Wi-Fi interface")
            return None, None
        steps = plan(desired, observed)
        ready = steps.done and steps.waiting_for is None
        self._record(observed, ready=ready, waiting_for=steps.waiting_for)
        self._track_heal(ready, steps)
        return desired, steps

    def _track_heal(self, ready: bool, steps: Plan) -> None:
        """A mesh that was whole and is not any more is broken from now until it is whole."""
        if ready:
            if self._broken is not None:
                self._healed(*self._broken)
                self._broken = None
            self._was_ready = True
        elif self._was_ready and self._broken is None:
            self._broken = (time.monotonic(), _describe_break(steps))

    def _healed(self, since: float, what: str) -> None:
        took = time.monotonic() - since
        self.status.heals += 1
        self.status.last_heal_at = time.time()
        self.status.last_heal_s = took
        self.status.last_heal = what
        log.info("mesh: healed (%s) in %.3f s", what, took)
        self._write_status_file()

    def _write_status_file(self) -> None:
        """Replace the status file atomically, so a reader never sees half of it."""
        path = self.config.status_file
        if path is None:
            return
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w") as file:
                json.dump(self.status.report(), file)
            os.replace(tmp, path)
        except OSError as error:
            log.warning("mesh: cannot write %s: %s", path, error)

    async def _round(self) -> bool:
        """One observe-plan-apply round; True when there was nothing left to do."""
        desired, steps = await self._look()
        if desired is None or steps is None or steps.done:
            return True
        for action in steps.actions:
            log.info("mesh: %s", action)
            try:
                if isinstance(action, ClaimAddress):
                    await self._claim(action, desired)
                else:
                    await self.backend.apply(action)
            except KERNEL_ERRORS as error:
                if isinstance(action, SetMtu):
                    self._mtu_refused = True
                    self.status.warning = f"radio refused MTU {action.mtu} ({error}); "
                    self.status.warning += "batman-adv will fragment"
                    log.warning("mesh: %s", self.status.warning)
                    continue
                raise StepFailed(f"{type(action).__name__} failed: {error}") from error
            if isinstance(action, JoinIbss):
                self.status.joins += 1
                self._notice_due = action.ibss.ht
        return False

    def _desired(self, observed: Observed) -> DesiredMesh | None:
        identity = self._identity(observed)
        if identity is None:
            return None
        cfg = self.config
        return DesiredMesh(
            radio=cfg.radio,
            mesh=cfg.mesh_interface,
            ibss=Ibss(cfg.ssid, cfg.freq_mhz, cfg.bssid, ht=cfg.ht),
            min_mtu=0 if self._mtu_refused else cfg.min_mtu,
            mesh_mac=mesh_mac(identity),
            bridge_loop_avoidance=cfg.bridged,
            orig_interval_ms=cfg.orig_interval_ms,
            prefix=cfg.prefix,
        )

    def _identity(self, observed: Observed) -> bytes | None:
        if self.identity is None and observed.radio is not None:
            self.identity = mac_bytes(observed.radio.mac)  # first radio seen, kept from then on
        return self.identity

    def _record(self, observed: Observed, *, ready: bool, waiting_for: str | None) -> None:
        self.status.ready = ready
        self.status.waiting_for = None if ready else waiting_for or "setting up"
        self.status.radio = observed.radio.ifname if observed.radio else None
        self._radio_ifindex = observed.radio.ifindex if observed.radio else None
        self._radio_mac = observed.radio.mac.lower() if observed.radio else None
        mesh = observed.mesh
        self._mesh_ifindex = mesh.ifindex if mesh is not None else None
        in_prefix = [a for a in mesh.addresses if a.network == self.config.prefix] if mesh else []
        self.status.address = in_prefix[0] if in_prefix else None
        if ready:
            self.status.last_error = None

    async def _claim(self, action: ClaimAddress, desired: DesiredMesh) -> None:
        assert self.identity is not None
        for candidate in islice(
            candidate_addresses(self.identity, action.prefix), MAX_ADDRESS_CANDIDATES
        ):
            if candidate in self._avoid:
                continue
            if await self.backend.address_holder(action.ifname, candidate, desired.mesh_mac):
                log.warning("mesh: %s is taken, trying the next candidate", candidate)
                continue
            address = IPv4Interface(f"{candidate}/{action.prefix.prefixlen}")
            await self.backend.apply(AddAddress(action.ifindex, address))
            await self.backend.announce(action.ifname, candidate, desired.mesh_mac)
            return
        raise AddressExhausted(
            f"all {MAX_ADDRESS_CANDIDATES} candidate addresses in {action.prefix} are taken"
        )

    # --- what the rest of the firmware asks ----------------------------------------------------

    async def endpoint(self) -> BroadcastEndpoint | None:
        """The address and broadcast address the UDP transport should use, once there is one."""
        if self.config.mode == "unmanaged":
            return await self._find_unmanaged_endpoint()
        address = self.status.address
        if address is None:
            return None
        return BroadcastEndpoint(
            ifname=self.config.mesh_interface,
            address=address.ip,
            broadcast=address.network.broadcast_address,
            prefixlen=address.network.prefixlen,
        )

    async def _find_unmanaged_endpoint(self) -> BroadcastEndpoint | None:
        wanted = self.config.interface
        for found in await self.backend.interface_addresses():
            if wanted is None and (not found.up or found.address.ip.is_loopback):
                continue
            if wanted is not None and found.ifname != wanted:
                continue
            endpoint = BroadcastEndpoint(
                ifname=found.ifname,
                address=found.address.ip,
                broadcast=found.broadcast,
                prefixlen=found.address.network.prefixlen,
            )
            self.status.ready, self.status.waiting_for = True, None
            self.status.address = found.address
            return endpoint
        self.status.ready = False
        self.status.waiting_for = f"no IPv4 address on {wanted or 'any up interface'}"
        return None

    async def neighbours(self) -> list[Neighbour]:
        return await self.backend.neighbours(self.config.mesh_interface)

    async def originators(self) -> list[Originator]:
        return await self.backend.originators(self.config.mesh_interface)

    async def close(self) -> None:
        await self.backend.close()


def _describe_break(steps: Plan) -> str:
    """What a repair is about, from the first plan that found the mesh broken."""
    kinds = {type(action) for action in steps.actions}
    if CreateMesh in kinds:
        return "bat0 re-created"
    if kinds & {SetRadioType, JoinIbss, SetLinkUp} or steps.waiting_for == JOINING:
        return "radio back in the IBSS"
    if ClaimAddress in kinds:
        return "address claimed again"
    if steps.waiting_for:
        return steps.waiting_for
    return "mesh settings restored: " + ", ".join(sorted(k.__name__ for k in kinds))
