"""The mesh edge: ad-hoc Wi-Fi, batman-adv and an IPv4 address on bat0, kept up by one loop.

config ──> MeshManager ──(observe / apply)──> MeshBackend ── Pyroute2Backend (nl80211,
              │                                    │          rtnetlink, batadv genl)
              └── reconcile.plan (pure)            └───────── FakeMeshBackend (unit tests)
"""

from hw.mesh.backend import InterfaceAddress, MeshBackend, make_backend
from hw.mesh.batadv import Neighbour, Originator
from hw.mesh.config import MeshConfig, MeshConfigError
from hw.mesh.manager import BroadcastEndpoint, MeshManager, MeshStatus

__all__ = [
    "BroadcastEndpoint",
    "InterfaceAddress",
    "MeshBackend",
    "MeshConfig",
    "MeshConfigError",
    "MeshManager",
    "MeshStatus",
    "Neighbour",
    "Originator",
    "make_backend",
]
