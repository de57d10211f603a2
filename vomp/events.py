"""What a `Node` tells its application: small, immutable event records.

The application (daemon, tests) drains them with `Node.next_event()`; the protocol core never calls
back into application code, so nothing here holds a reference to a live object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EndReason(enum.Enum):
    """Why a call ended, as this side saw it. servald never sends a reason (SPEC §12.5), so each
    side infers it from the states it last knew; the value is the text a log line shows."""

    HUNG_UP = "hung up here"
    BUSY_HERE = "rejected here: busy with another call"
    DECLINED = "declined here"
    ENDED_BY_FAR_END = "ended by the far end"
    CANCELLED = "the caller hung up before it was answered"
    BUSY = "busy: the far end ended the call before it rang"
    REJECTED = "rejected: the far end ended the call while ringing"
    NO_SHARED_CODEC = "no shared codec"
    CANNOT_RING = "nothing here can ring"
    NO_REPLY = "no reply: the far end never started ringing (dial timeout)"
    NO_ANSWER = "no answer (ring timeout)"
    NETWORK_LOST = "network lost: nothing heard from the far end (network timeout)"
    SIMULTANEOUS_DIAL = "both sides dialled each other: the other call was kept"
    PROTOCOL = "the far end sent states that make no sense for this call"


class Event:
    """Base class of everything `Node.next_event()` returns."""


@dataclass(frozen=True)
class PeerFound(Event):
    """A neighbour's SID resolved and we heard from it: it can now be called and asked."""

    sid: bytes
    address: object


@dataclass(frozen=True)
class PeerLost(Event):
    """Nothing heard from a neighbour for the expiry time; its table entry is gone."""

    sid: bytes


@dataclass(frozen=True)
class DnaAnswer(Event):
    """One reply to a number lookup (several can arrive for one lookup)."""

    number: str
    sid: bytes
    uri: str
    did: str
    name: str


@dataclass(frozen=True)
class DnaLookupFinished(Event):
    """A lookup reached its timeout; `answered` says whether any reply came."""

    number: str
    answered: bool


@dataclass(frozen=True)
class IncomingCall(Event):
    """A peer dialled us; the application may `ring()`, `answer()` or `hang_up()` it.

    `replaces` is our own outgoing call to the same peer that gave way to this one (both sides
    dialled each other at once; the call of the lower SID is kept): the user who dialled wants
    this call, so the phone answers it at once.
    """

    call: int
    remote_sid: bytes
    caller_number: str
    called_number: str
    replaces: int | None = None


@dataclass(frozen=True)
class CallStateChanged(Event):
    """Either side's state of a call moved forward (states never go back)."""

    call: int
    local_session: int
    remote_session: int
    local_state: int
    remote_state: int
    remote_sid: bytes
    remote_number: str
    remote_codecs: tuple[int, ...] = ()  # the peer's codec list, once its first message came
    end_reason: EndReason | None = None  # set once local_state is CALLENDED
    end_detail: str = ""  # e.g. "no shared codec; far end offers [0x21]"


@dataclass(frozen=True)
class CallEnded(Event):
    """The call is gone from the table; nothing more is sent or accepted for it."""

    call: int
    remote_sid: bytes
    timed_out: bool
    reason: EndReason = EndReason.HUNG_UP
    detail: str = ""


@dataclass(frozen=True)
class AudioFrameReceived(Event):
    """One VoMP audio frame, in arrival order, duplicates dropped (SPEC §12.6)."""

    call: int
    codec: int
    time_ms: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class PacketDropped(Event):
    """A datagram or frame was refused; the reason is also counted in `Node.counters`."""

    reason: str


@dataclass(frozen=True)
class NumberClaimConflict(Event):
    """A SID answered for a number that another SID answered for first: perhaps a new
    handset, perhaps someone taking the number. Calls by number still go to `owner` until
    the user says otherwise (`Node.trust_number`)."""

    number: str
    owner: bytes
    claimant: bytes
