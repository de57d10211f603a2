"""What the mesh should look like, what it looks like, and the steps between: no I/O here.

`plan(desired, observed)` is a pure function. The manager observes the kernel, plans, applies
the steps and observes again until the plan is empty; after a radio reset or a vanished
interface the same loop brings everything back. Each plan only holds steps that are valid on the
state it saw (it never enslaves a bat0 it has yet to create), so a failed step costs nothing:
the next round starts from what the kernel really holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network

IFTYPE_ADHOC = "adhoc"
JOINING = "joining the IBSS"


@dataclass(frozen=True)
class Ibss:
    """The ad-hoc network every handset joins; a fixed BSSID keeps partitions from forming."""

    ssid: str
    freq_mhz: int
    bssid: str
    ht: bool = False  # 802.11n HT20; False joins with legacy rates only (nl80211 20_noht)


@dataclass(frozen=True)
class DesiredMesh:
    radio: str | None  # interface name; None means the first Wi-Fi interface found
    mesh: str  # the batman-adv interface, e.g. bat0
    ibss: Ibss
    min_mtu: int
    mesh_mac: str
    bridge_loop_avoidance: bool
    orig_interval_ms: int
    prefix: IPv4Network


@dataclass(frozen=True)
class RadioState:
    ifindex: int
    ifname: str
    mac: str
    iftype: str  # nl80211 name: 'adhoc', 'station', ...
    up: bool
    mtu: int
    master: int | None  # ifindex of the interface it is enslaved to
    ssid: str | None  # the IBSS it is in, None when it is in none
    freq_mhz: int | None
    ht: bool | None = None  # joined with HT; None when the kernel does not say


@dataclass(frozen=True)
class MeshState:
    ifindex: int
    ifname: str
    mac: str
    up: bool
    bridge_loop_avoidance: bool
    orig_interval_ms: int
    addresses: tuple[IPv4Interface, ...] = ()


@dataclass(frozen=True)
class Observed:
    radio: RadioState | None
    mesh: MeshState | None


# --- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetLinkUp:
    ifindex: int
    up: bool


@dataclass(frozen=True)
class SetRadioType:
    ifindex: int
    iftype: str


@dataclass(frozen=True)
class SetMtu:
    ifindex: int
    mtu: int


@dataclass(frozen=True)
class LeaveIbss:
    ifindex: int


@dataclass(frozen=True)
class JoinIbss:
    ifindex: int
    ibss: Ibss


@dataclass(frozen=True)
class CreateMesh:
    ifname: str


@dataclass(frozen=True)
class SetMac:
    ifindex: int
    mac: str


@dataclass(frozen=True)
class Enslave:
    ifindex: int
    master: int


@dataclass(frozen=True)
class SetMeshOptions:
    ifindex: int
    bridge_loop_avoidance: bool | None = None
    orig_interval_ms: int | None = None


@dataclass(frozen=True)
class ClaimAddress:
    """Probe this handset's candidate addresses in `prefix` and add the first free one."""

    ifindex: int
    ifname: str
    prefix: IPv4Network


Action = (
    SetLinkUp
    | SetRadioType
    | SetMtu
    | LeaveIbss
    | JoinIbss
    | CreateMesh
    | SetMac
    | Enslave
    | SetMeshOptions
    | ClaimAddress
)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    waiting_for: str | None = None  # why the mesh cannot be complete yet, for the status line

    @property
    def done(self) -> bool:
        return not self.actions


def plan(desired: DesiredMesh, observed: Observed) -> Plan:
    """The steps that move `observed` towards `desired`, in the order they must run."""
    result = Plan()
    radio, mesh = observed.radio, observed.mesh
    if radio is not None:
        _plan_radio(desired, radio, result)
    else:
        result.waiting_for = "no Wi-Fi interface"
    if mesh is None:
        result.actions.append(CreateMesh(desired.mesh))
        return result
    _plan_mesh(desired, mesh, radio, result)
    return result


def _plan_radio(desired: DesiredMesh, radio: RadioState, result: Plan) -> None:
    actions = result.actions
    if radio.iftype != IFTYPE_ADHOC:
        # mac80211 changes the type of an interface only while it is down.
        if radio.up:
            actions.append(SetLinkUp(radio.ifindex, False))
        actions.append(SetRadioType(radio.ifindex, IFTYPE_ADHOC))
        return
    if radio.mtu < desired.min_mtu:
        actions.append(SetMtu(radio.ifindex, desired.min_mtu))
    if not radio.up:
        actions.append(SetLinkUp(radio.ifindex, True))
        return  # a down interface cannot join; the next round sees it up
    wanted = desired.ibss
    if radio.ssid == wanted.ssid and radio.freq_mhz is None:
        # In the IBSS but without a channel: mac80211 (re)joins in a work item, after a join
        # and again when it merges with a peer's IBSS. Leaving now would restart that, and on a
        # loaded machine again and again; the kernel reports (carrier up) when it is done.
        result.waiting_for = JOINING
        return
    if (
        radio.ssid != wanted.ssid
        or radio.freq_mhz != wanted.freq_mhz
        or (radio.ht is not None and radio.ht != wanted.ht)
    ):
        if radio.ssid is not None:
            actions.append(LeaveIbss(radio.ifindex))
        actions.append(JoinIbss(radio.ifindex, wanted))


def _plan_mesh(
    desired: DesiredMesh, mesh: MeshState, radio: RadioState | None, result: Plan
) -> None:
    actions = result.actions
    if mesh.mac != desired.mesh_mac:
        actions.append(SetMac(mesh.ifindex, desired.mesh_mac))
    if radio is not None and radio.master != mesh.ifindex:
        actions.append(Enslave(radio.ifindex, mesh.ifindex))
    bla = desired.bridge_loop_avoidance
    interval = desired.orig_interval_ms
    if mesh.bridge_loop_avoidance != bla or mesh.orig_interval_ms != interval:
        actions.append(
            SetMeshOptions(
                mesh.ifindex,
                bridge_loop_avoidance=None if mesh.bridge_loop_avoidance == bla else bla,
                orig_interval_ms=None if mesh.orig_interval_ms == interval else interval,
            )
        )
    if not mesh.up:
        actions.append(SetLinkUp(mesh.ifindex, True))
    if any(a.network == desired.prefix for a in mesh.addresses):
        return
    if _radio_in_mesh(desired, radio, mesh):
        actions.append(ClaimAddress(mesh.ifindex, mesh.ifname, desired.prefix))
    else:
        # A probe sent before the radio is in the IBSS reaches nobody and proves nothing.
        result.waiting_for = result.waiting_for or "radio not in the mesh yet"


def _radio_in_mesh(desired: DesiredMesh, radio: RadioState | None, mesh: MeshState) -> bool:
    return (
        radio is not None
        and radio.up
        and radio.master == mesh.ifindex
        and radio.ssid == desired.ibss.ssid
        and radio.freq_mhz == desired.ibss.freq_mhz
    )
