"""The mesh section of the handset's configuration, checked once so the manager can trust it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Network
from typing import Literal

MODES = ("ibss", "unmanaged")
BACKENDS = ("pyroute2", "fake")
BOOL_SETTINGS = ("bridged", "ht")
FLOAT_SETTINGS = ("poll_interval_s", "watch_interval_s", "address_check_interval_s")

Mode = Literal["ibss", "unmanaged"]
Backend = Literal["pyroute2", "fake"]
DEFAULT_PREFIX = IPv4Network("10.42.0.0/16")


class MeshConfigError(ValueError):
    """A mesh setting is wrong; the message names the setting, where it came from and a fix."""


@dataclass(frozen=True)
class MeshConfig:
    # ibss: bring up ad-hoc Wi-Fi + batman-adv; unmanaged: use `interface` as it is (laptop, LAN).
    mode: Mode = "ibss"
    # pyroute2 talks to the kernel; fake is an in-memory kernel for unit tests.
    backend: Backend | None = None  # None: $HANDSET_MESH_BACKEND, else pyroute2 (hw.backends)
    radio: str | None = None  # Wi-Fi interface; None: the first one nl80211 lists
    mesh_interface: str = "bat0"
    ssid: str = "mesh-handset"
    freq_mhz: int = 2412
    bssid: str = "02:ca:ff:ee:ba:be"
    # Join the IBSS with 802.11n (HT20) instead of legacy rates. Off by default: with HT a
    # neighbour keeps a block-ack window for a station whose radio reset and silently drops its
    # unicast until the restarted sequence numbers pass the old ones (tens of seconds). Legacy
    # rates (54 Mbit/s) are far more than voice needs.
    ht: bool = False
    # batman-adv adds 32 bytes per frame; 1560 keeps 1500-byte IP packets unfragmented.
    min_mtu: int = 1560
    prefix: IPv4Network = DEFAULT_PREFIX
    # Bridge loop avoidance only matters when bat0 is bridged to a LAN; left on, it drops
    # broadcasts (servald's discovery) for ~30 s after bat0 comes up.
    bridged: bool = False
    orig_interval_ms: int = 1000
    interface: str | None = None  # unmanaged mode; None: the first up interface with IPv4
    netns: str | None = None  # manage this network namespace instead of our own (bench nodes)
    poll_interval_s: float = 5.0  # re-check even without a netlink event
    # How often the running manager reads batman-adv's originator table: new originators mean
    # partitions merged, and then this handset's address is probed again for a duplicate.
    watch_interval_s: float = 2.0
    address_check_interval_s: float = 60.0  # re-probe the address even without a merge
    # Where a running manager (`handset mesh watch`) keeps its status as JSON, so that
    # `handset mesh status` can say when the mesh last healed; None: nowhere.
    status_file: str | None = None

    def __post_init__(self) -> None:
        _check(self.mode in MODES, "mode", self.mode, f"use one of {', '.join(MODES)}")
        _check(self.backend in (None, *BACKENDS), "backend", self.backend, f"use one of {BACKENDS}")
        _check(
            isinstance(self.prefix, IPv4Network) and self.prefix.prefixlen <= 30,
            "prefix",
            self.prefix,
            "use an IPv4 network of /30 or wider, e.g. 10.42.0.0/16",
        )
        _check(1 <= len(self.ssid.encode()) <= 32, "ssid", self.ssid, "use 1 to 32 bytes")
        _check(2412 <= self.freq_mhz <= 5885, "freq_mhz", self.freq_mhz, "e.g. 2412 (channel 1)")
        _check(_is_mac(self.bssid), "bssid", self.bssid, "write a MAC like 02:ca:ff:ee:ba:be")
        _check(1280 <= self.min_mtu <= 2304, "min_mtu", self.min_mtu, "use 1560")
        _check(
            20 <= self.orig_interval_ms <= 60000,
            "orig_interval_ms",
            self.orig_interval_ms,
            "use 1000",
        )
        for name in BOOL_SETTINGS:
            value = getattr(self, name)
            _check(isinstance(value, bool), name, value, "use true or false")
        _check(self.poll_interval_s > 0, "poll_interval_s", self.poll_interval_s, "use 5")
        _check(self.watch_interval_s > 0, "watch_interval_s", self.watch_interval_s, "use 2")
        _check(
            self.address_check_interval_s > 0,
            "address_check_interval_s",
            self.address_check_interval_s,
            "use 60",
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], where: str = "mesh config") -> MeshConfig:
        """Build from parsed config text; errors say `where` (file:line) and how to fix it."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for key, value in values.items():
            if key not in known:
                raise MeshConfigError(
                    f"{where}: unknown mesh setting {key!r}; known: {', '.join(sorted(known))}"
                )
            kwargs[key] = _convert(key, value, where)
        try:
            return cls(**kwargs)  # type: ignore[arg-type]
        except MeshConfigError as error:
            raise MeshConfigError(f"{where}: {error}") from None


def _convert(key: str, value: object, where: str) -> object:
    try:
        if key == "prefix":
            return IPv4Network(str(value), strict=True)
        if key in ("freq_mhz", "min_mtu", "orig_interval_ms"):
            return int(str(value))
        if key in FLOAT_SETTINGS:
            return float(str(value))
        if key in BOOL_SETTINGS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("yes", "no", "true", "false", "1", "0"):
                raise ValueError("not a yes/no value")
            return text in ("yes", "true", "1")
    except ValueError as error:
        raise MeshConfigError(
            f"{where}: mesh setting {key}={value!r} is invalid: {error}"
        ) from None
    optional = ("radio", "interface", "netns", "status_file")
    return None if value in ("", None) and key in optional else value


def _check(ok: bool, key: str, value: object, fix: str) -> None:
    if not ok:
        raise MeshConfigError(f"mesh setting {key}={value!r} is invalid: {fix}")


def _is_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )
