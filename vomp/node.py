"""`Node`: one Serval identity on the mesh, as a sans-IO state machine (like aioquic's connection).

The transport feeds it datagrams with `receive(datagram, source_address, now)`, sends what
`datagrams_to_send(now)` returns, calls `handle_timer(now)` at `next_timer()`, and drains
`next_event()`. The application issues commands (`lookup`, `dial`, `ring`, `answer`, `hang_up`,
`send_audio`). Nothing here reads a clock or a socket, and all randomness (nonces, sessions,
ports, the frame-seq start) comes from the `rng` given at construction: the OS generator by
default, a seeded Random in tests, which then replay exactly.

What it does on the wire (SPEC §14): a tick broadcast every 500 ms with our full SID in the
header; to every neighbour every 500 ms (and ~50 ms after an ACK_SOON frame) a link-state record
claiming UNICAST with its interface number and a truthful ack; PLEASE_EXPLAIN asked and answered;
key-map requests answered and sent; DNA lookups answered and made; VoMP calls. Every malformed,
forged or unwanted input is counted in `counters` and dropped; no exception escapes `receive`.

Anyone in radio range is a stranger until proven otherwise (`vomp.limits`): a neighbour's
address moves only on a fresh crypto_box from its SID, a call's only on that call's progress;
an address that has not proved itself gets no more bytes than it sent us (or a small budget);
key derivations and signature checks for unproven SIDs are capped per datagram and per second;
every table is capped and expires; `rejected` gives every refusal by reason.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

from vomp import crypto, keymap, linkstate, mdp, please_explain
from vomp.address import AddressBook
from vomp.call import CallError, CallTable
from vomp.codecs import OUR_CODECS
from vomp.dna import (
    encode_dna_reply,
    encode_dna_request,
    is_valid_did,
    parse_dna_reply,
    parse_dna_request,
    uri_names_sid,
)
from vomp.dna_lookup import LOOKUP_TIMEOUT, DnaLookups
from vomp.events import (
    DnaAnswer,
    DnaLookupFinished,
    EndReason,
    Event,
    NumberClaimConflict,
    PacketDropped,
    PeerFound,
    PeerLost,
)
from vomp.identity import Identity
from vomp.limits import AddressLedger, OncePer, RecentKeys, TokenBucket
from vomp.mdp import MdpMode
from vomp.messages import CallState, encode_vomp, parse_vomp
from vomp.neighbours import ACK_SOON_DELAY, TICK_INTERVAL, Neighbour, NeighbourTable
from vomp.packet import (
    MTU,
    PACKET_UNICAST,
    TYPE_DATA,
    TYPE_PLEASE_EXPLAIN,
    Frame,
    Packet,
    encode_frame,
    encode_header,
    parse_packet,
)
from vomp.wire import ParseError

__all__ = ["BROADCAST", "CallError", "Node"]


class _Broadcast:
    """The address meaning "the local link's broadcast address" (the transport knows which)."""

    def __repr__(self) -> str:
        return "BROADCAST"


BROADCAST = _Broadcast()

KEYMAP_RETRY = 0.5  # s between key-map requests to one peer while its key is missing
BROADCAST_ID_MEMORY = 300.0  # s a (source, broadcast id) pair is remembered (§6 rule 4)
HELD_PER_PEER = 4  # signed frames kept per peer while its key is fetched
HELD_PEERS = 16
HOLD_FOR_KEY = 2.0  # s; after that the frame is dropped (its sender will have resent it)
BROADCAST_ID_LIMIT = 4096  # ... but no more of them than this, whatever a sender floods us with
NAME_MAX = 64
HEADER_LEN = 37  # version, encapsulation, 0x20 + SID, flags, packet seq: all our headers
# The largest audio payload one datagram carries: MTU minus packet header, frame header
# (flags, 0x20 + SID, frame seq, length), crypto_box overhead, port byte and VoMP audio header.
MAX_AUDIO_PAYLOAD = MTU - HEADER_LEN - 37 - crypto.BOX_OVERHEAD - 1 - 11

# What a stranger can get out of us (see vomp.limits for the records that keep these).
EXPLAIN_INTERVAL = 0.5  # s: PLEASE_EXPLAIN answered to / asked of one SID at most this often
EXPLAIN_KEYS = 1024  # SIDs/addresses remembered for that
# 0x20 answers in one PLEASE_EXPLAIN frame: it must fit one datagram (35 would)
EXPLAIN_ANSWERS_MAX = 32
UNPROVEN_BUDGET = 256  # bytes an unproven address gets from us, unless it sent us more
UNPROVEN_BYTE_RATE = 8192.0  # bytes/s all unproven addresses share
PROVEN_RATIO = 4.0  # a proven address gets at most this many bytes for each it sent us
UNPROVEN_FRAME_RATE = 64.0  # frames/s to unproven addresses: each uses a frame seq, and a
UNPROVEN_FRAME_BURST = 32.0  # real peer's 64-frame window must never be overrun (§9.2)
# Frames to anyone but a call's peer, proven or not: between two frames to that peer fewer than
# 256 - 64 other frame seqs may pass, or it takes our next frame for an old one.
OTHER_FRAME_RATE = 400.0
OTHER_FRAME_BURST = 150.0
ADDRESS_LIMIT = 1024  # source addresses in the ledger
ADDRESS_MEMORY = 60.0  # s an address is remembered after it was last heard
CRYPTO_PER_DATAGRAM = 4  # key derivations + signature checks for unproven SIDs, per datagram
CRYPTO_PER_SECOND = 64.0  # ... and per second
SIGNKEY_CONVERSIONS_PER_DATAGRAM = 8  # unknown 0xFB keys turned into SIDs (addresses, answers)
KEY_CACHE_LIMIT = 512
BOOK_LIMIT = 4096  # SIDs in the address book
NONCES_PER_PEER = 256  # crypto_box nonces remembered per SID (replayed boxes are dropped)
NONCE_PEERS = 512
SWEEP_INTERVAL = 6.0  # s between sweeps of SIDs nobody needs any more
CHALLENGE_INTERVAL = 2.0  # s between key-map requests to one (SID, other address) claim
# A neighbour that has not proved its address yet (no fresh crypto_box from it), or whose key
# we lack, is asked again for its key (§10): the boxed answer proves it and brings the key.
# First after HANDSHAKE_RETRY, then twice as long each time up to HANDSHAKE_RETRY_MAX, each
# wait stretched by a random 0-100 % so that a mesh that booted together does not ask in
# lockstep. A request or its answer can be lost, or refused by either side's limits when many
# strangers appear at once.
HANDSHAKE_RETRY = 1.0
HANDSHAKE_RETRY_MAX = 8.0
# Part of each limit on strangers that routine frames (link-state, request copies) leave to
# the handshake: frames that prove an address must get through when all limits are busy.
HANDSHAKE_KEEP_BYTES = 1024  # of the rate all strangers share (UNPROVEN_BYTE_RATE)
HANDSHAKE_KEEP_FRAMES = UNPROVEN_FRAME_BURST / 2  # of the frame rates


class Priority(enum.IntEnum):
    """How a unicast frame is charged to the limits on what strangers get from us."""

    USER = 0  # a call the user placed or answered: not charged at all
    HANDSHAKE = 1  # key-map requests and answers (they prove addresses): may use every limit
    ROUTINE = 2  # the rest: leaves part of every limit to the handshake


@dataclass
class _PendingDial:
    number: str
    deadline: float


class Node:
    """One handset (one identity) speaking Serval overlay/MDP/DNA/VoMP to its neighbours."""

    def __init__(
        self,
        identity: Identity,
        number: str,
        name: str = "",
        *,
        rng: random.Random | None = None,
        codecs: tuple[int, ...] = OUR_CODECS,
        can_ring: bool = True,
    ) -> None:
        if not is_valid_did(number):
            raise ValueError(
                f"phone number {number!r} is not valid: use 5 to 31 characters of 0-9 * # +"
            )
        if any(c in name for c in "|\0\n") or len(name) > NAME_MAX:
            raise ValueError(f"name {name!r}: at most {NAME_MAX} characters, no '|' or newline")
        self.identity = identity
        self.sid = identity.sid
        self.number = number
        self.name = name
        # Production uses the OS generator (nonces, sessions, ports); tests pass a seeded one.
        self._rng = rng or random.SystemRandom()
        self.book = AddressBook(BOOK_LIMIT)
        self.book.learn(self.sid, identity.sign_public)
        self.neighbours = NeighbourTable(self._rng)
        self.calls = CallTable(number, codecs, self._rng, can_ring=can_ring, local_sid=identity.sid)
        self.lookups = DnaLookups(self._rng)
        self.counters: Counter[str] = Counter()
        self._keys = crypto.SharedKeyCache(KEY_CACHE_LIMIT)
        self._events: deque[Event] = deque()
        # (destination, frame or None for a tick, how it is charged to the stranger limits)
        self._outbox: list[tuple[object, Frame | None, Priority]] = []
        self._next_tick_at: float | None = None
        self._next_sweep_at: float | None = None
        self._seen_broadcast_ids: dict[tuple[bytes, bytes], float] = {}
        self._keymap_asked: dict[bytes, float] = {}
        self._handshake_retry: dict[bytes, tuple[float, float]] = {}  # SID: (when, next wait)
        self._ticks = 0
        self._pending_dials: list[_PendingDial] = []
        self._awaiting_key: dict[bytes, list[tuple[Frame, object, float]]] = {}
        # Where a call's peer is: (address, proven by the call's own progress). Kept after the
        # neighbour expires so a final CALLENDED still goes out; moved only by call progress.
        self._call_address: dict[bytes, tuple[object, bool]] = {}
        self._addresses = AddressLedger(
            budget=UNPROVEN_BUDGET,
            verified_ratio=PROVEN_RATIO,
            rate=UNPROVEN_BYTE_RATE,
            burst=2 * UNPROVEN_BYTE_RATE,
            capacity=ADDRESS_LIMIT,
            memory=ADDRESS_MEMORY,
        )
        self._unproven_frames = TokenBucket(UNPROVEN_FRAME_RATE, UNPROVEN_FRAME_BURST)
        self._other_frames = TokenBucket(OTHER_FRAME_RATE, OTHER_FRAME_BURST)
        self._crypto_rate = TokenBucket(CRYPTO_PER_SECOND, CRYPTO_PER_SECOND)
        self._crypto_spent = 0  # in the datagram being received
        self._explained_to = OncePer(EXPLAIN_INTERVAL, EXPLAIN_KEYS)
        self._explain_asked = OncePer(EXPLAIN_INTERVAL, EXPLAIN_KEYS)
        self._challenged = OncePer(CHALLENGE_INTERVAL, EXPLAIN_KEYS)
        self._nonces: OrderedDict[bytes, RecentKeys] = OrderedDict()
        self._unwanted_at_last_sweep: set[bytes] = set()

    @property
    def rejected(self) -> dict[str, int]:
        """Every refusal so far by reason: inputs dropped, and sends withheld from strangers."""
        return {
            key.split("_", 1)[1]: count
            for key, count in sorted(self.counters.items())
            if key.startswith(("dropped_", "withheld_")) and count
        }

    # ================================================================ the sans-IO interface
    def receive(self, datagram: bytes, source_address: object, now: float) -> None:
        """Process one UDP payload from `source_address`. Never raises for bad input."""
        self._ensure_started(now)
        self.counters["datagrams_received"] += 1
        self._crypto_spent = 0
        self.book.conversions_left = SIGNKEY_CONVERSIONS_PER_DATAGRAM
        try:
            self._addresses.heard(source_address, len(datagram), now)
            self._receive(bytes(datagram), source_address, now)
        except (ParseError, crypto.CryptoFailure, ValueError) as exc:
            self._drop(_reason(exc))
        except Exception as exc:  # a bug of ours must not let one datagram stop the handset
            self.counters["internal_errors"] += 1
            self._drop(f"internal_{type(exc).__name__}")
        self._flush_calls()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, object]]:
        """Every datagram due now, each with its destination (an address or BROADCAST)."""
        self._ensure_started(now)
        self._flush_calls()
        by_destination: dict[object, list[tuple[Frame | None, Priority]]] = {}
        # the handshake first (it is what the limits keep room for); the rest in its order
        outbox = sorted(self._outbox, key=lambda item: item[2] is not Priority.HANDSHAKE)
        for destination, frame, priority in outbox:
            by_destination.setdefault(destination, []).append((frame, priority))
        self._outbox.clear()
        datagrams = []
        for destination, frames in by_destination.items():
            try:
                chunks = self._packets(destination, frames, now)
            except Exception as exc:  # one destination's trouble must not lose the others'
                self.counters["internal_errors"] += 1
                self._drop(f"internal_{type(exc).__name__}")
                continue
            datagrams += [(chunk, destination) for chunk in chunks]
        self.counters["datagrams_sent"] += len(datagrams)
        return datagrams

    def next_timer(self) -> float | None:
        """When `handle_timer` must next run; 0.0 before the first call (start at once)."""
        if self._next_tick_at is None:
            return 0.0
        times = [self._next_tick_at, self.calls.next_timer(), self.lookups.next_timer()]
        times += [n.ack_due_at for n in self.neighbours]
        times += [d.deadline for d in self._pending_dials]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if now >= self._ensure_started(now):
            self._tick(now)
        for neighbour in self.neighbours:
            if neighbour.ack_due_at is not None and neighbour.ack_due_at <= now:
                self._queue_linkstate(neighbour)
        if self._next_sweep_at is not None and now >= self._next_sweep_at:
            self._sweep(now)
        self.calls.handle_timer(now)
        self._run_lookups(now)
        self._flush_calls()

    def next_event(self) -> Event | None:
        self._flush_calls()
        return self._events.popleft() if self._events else None

    # ============================================================================ commands
    def lookup(self, number: str, now: float, timeout: float = LOOKUP_TIMEOUT) -> None:
        """Ask the mesh who has `number` ('*' or '' asks everyone); answers arrive as events."""
        if number not in ("", "*") and not is_valid_did(number):
            raise ValueError(f"cannot look up {number!r}: use 5 to 31 characters of 0-9 * # +")
        self._ensure_started(now)
        self.lookups.start(number, now, timeout)
        self._run_lookups(now)

    def dial(self, target: str | bytes, now: float) -> int | None:
        """Call a SID (bytes) or a number. Returns the call id, or None while a number is
        being looked up: the call is placed when the first answer arrives (a
        CallStateChanged event carries its id) and abandoned with DnaLookupFinished otherwise.
        A SID is called with its number when a recent lookup answer names it.
        """
        self._ensure_started(now)
        if isinstance(target, bytes):
            if len(target) != 32:
                raise ValueError("a SID is 32 bytes")
            return self._dial_sid(target, self.lookups.number_of(target, now), now)
        if not is_valid_did(target):
            raise ValueError(f"cannot dial {target!r}: use 5 to 31 characters of 0-9 * # +")
        owner = self.lookups.owner(target)
        for answer in self.lookups.cached(target, now):
            if answer.sid in self.neighbours and owner in (None, answer.sid):
                return self._dial_sid(answer.sid, target, now)
        self.lookup(target, now)
        self._pending_dials.append(_PendingDial(target, now + LOOKUP_TIMEOUT))
        return None

    def trust_number(self, number: str, sid: bytes) -> None:
        """The user accepts `sid` as the owner of `number` (after a NumberClaimConflict)."""
        self.lookups.trust(number, sid)

    def ring(self, call: int, now: float) -> None:
        self.calls.ring(call, now)
        self._flush_calls()

    def answer(self, call: int, now: float) -> None:
        self.calls.answer(call, now)
        self._flush_calls()

    def hang_up(self, call: int, now: float, reason: EndReason = EndReason.HUNG_UP) -> None:
        """Hang up, reject or cancel; `reason` is what this side's events and logs say."""
        self.calls.hang_up(call, now, reason)
        self._flush_calls()

    def send_audio(self, call: int, codec: int, payload: bytes, duration_ms: int) -> bool:
        """Queue one audio frame (opaque bytes); False if the call is not INCALL."""
        if len(payload) > MAX_AUDIO_PAYLOAD:
            raise ValueError(
                f"audio payload of {len(payload)} bytes does not fit one datagram "
                f"(at most {MAX_AUDIO_PAYLOAD}); send shorter frames"
            )
        sent = self.calls.send_audio(call, codec, payload, duration_ms)
        self._flush_calls()
        return sent

    # ============================================================================ receiving
    def _receive(self, datagram: bytes, source: object, now: float) -> None:
        parsed = parse_packet(datagram, self.book)
        packet = parsed.packet
        if packet.sender == self.sid:
            self.counters["own_packets"] += 1
            return
        if packet.sender is None:
            # We cannot even tell who sent it: ask everyone, and the sender directly (§8).
            self._ask_to_explain(parsed.unknown_prefixes, None, source, now)
            self._drop("unknown_sender")
            return
        known = self.neighbours.get(packet.sender)
        neighbour, is_new = self.neighbours.heard(
            packet.sender,
            source,
            interface=packet.interface or 0,
            version=packet.version,
            seq=packet.seq,
            unicast=packet.unicast,
            now=now,
        )
        if neighbour is None:
            self._drop("neighbour_table_full")
            return
        if is_new:
            self._events.append(PeerFound(packet.sender, source))
        if known is not None and known.address != source:
            # Someone claims this SID from elsewhere: only the real peer can answer a key-map
            # request with a crypto_box, which then moves the neighbour (`_proven`).
            self.counters["address_claims"] += 1
            if self._challenged.allow((packet.sender, source), now):
                self._request_sign_key(packet.sender, now, force=True, address=source)
        elif self.book.sign_key(packet.sender) is None:
            self._request_sign_key(packet.sender, now)
        for frame in packet.frames:
            try:
                self._receive_frame(frame, neighbour, source, now)
            except (ParseError, crypto.CryptoFailure, ValueError) as exc:
                # one bad frame costs only itself: the packet's other frames still count
                self._drop(_reason(exc))
        if parsed.unknown_prefixes:
            self._ask_to_explain(parsed.unknown_prefixes, packet.sender, source, now)
        self._release_held_frames(now)

    def _release_held_frames(self, now: float) -> None:
        """Verify the signed frames that waited for a key, now that the key is known
        (from a key-map reply, a 0xFB address or a 0xFB PLEASE_EXPLAIN statement)."""
        for sid in [sid for sid in self._awaiting_key if self.book.sign_key(sid) is not None]:
            for frame, source, _held_at in self._awaiting_key.pop(sid):
                try:
                    self._receive_mdp(frame, source, now)
                except (ParseError, crypto.CryptoFailure, ValueError) as exc:
                    self._drop(_reason(exc))

    def _receive_frame(self, frame: Frame, neighbour: Neighbour, source: object, now: float):
        if not frame.resolved:
            self._drop("unresolved_frame")
            return
        if frame.source == self.sid:
            self.counters["own_frames"] += 1
            return
        if frame.frame_seq is not None and not neighbour.frames.accept(frame.frame_seq):
            self.counters["duplicate_frames"] += 1
            return
        if frame.broadcast_id is not None:
            key = (frame.source_sid, frame.broadcast_id)
            if key in self._seen_broadcast_ids:
                self.counters["duplicate_broadcasts"] += 1
                return
            self._seen_broadcast_ids[key] = now
            if len(self._seen_broadcast_ids) > BROADCAST_ID_LIMIT:  # oldest first: dicts keep order
                del self._seen_broadcast_ids[next(iter(self._seen_broadcast_ids))]
        if not frame.is_broadcast and frame.destination != self.sid:
            self.counters["frames_not_for_us"] += 1
            return
        if frame.ack_soon and neighbour.ack_due_at is None:
            neighbour.ack_due_at = now + ACK_SOON_DELAY
        if frame.type == TYPE_PLEASE_EXPLAIN:
            self._receive_please_explain(frame, source, now)
        elif frame.type == TYPE_DATA:
            self._receive_mdp(frame, source, now)
        else:
            self.counters["frames_skipped_type"] += 1

    def _receive_please_explain(self, frame: Frame, source: object, now: float) -> None:
        entries = please_explain.parse_please_explain(frame.payload, self.book)
        for entry in entries:
            if isinstance(entry, please_explain.ExplainAnswer):
                self.book.learn(entry.sid, entry.sign_key)
        requests = [e for e in entries if isinstance(e, please_explain.ExplainRequest)]
        if not requests:
            return
        if not self._explained_to.allow(frame.source_sid, now):
            self._drop("please_explain_too_often")  # servald answers one SID every 500 ms
            return
        # One bisection per prefix, at most EXPLAIN_ANSWERS_MAX answers: linear in the
        # request, whatever the book holds, and the answer fits one datagram.
        answers: dict[bytes, None] = {}
        explain_self = False
        for entry in requests:
            room = EXPLAIN_ANSWERS_MAX - len(answers)
            for sid in self.book.matches(entry.prefix, limit=room + 1):
                if sid == self.sid:
                    explain_self = True
                elif len(answers) < EXPLAIN_ANSWERS_MAX:
                    answers[sid] = None
            if len(answers) >= EXPLAIN_ANSWERS_MAX:
                self.counters["please_explain_answers_capped"] += 1
                break
        if explain_self or answers:
            # Any packet of ours carries our full SID in its header, which is the answer
            # for our own SID (§8); other SIDs we know go in as 0x20 statements.
            payload = please_explain.encode_please_explain(
                [please_explain.ExplainAnswer(sid) for sid in answers]
            )
            self._send_frame(
                frame.source_sid,
                Frame.to_peer(self.sid, frame.source_sid, payload, type=TYPE_PLEASE_EXPLAIN),
                fallback=source,
            )
            self.counters["please_explain_answered"] += 1

    def _receive_mdp(self, frame: Frame, source: object, now: float) -> None:
        mode = mdp.mode_of(frame.flags)
        if mode is MdpMode.BOX and frame.destination != self.sid:
            self._drop("boxed_broadcast")
            return
        sign_public = self.book.sign_key(frame.source_sid)
        if mode is MdpMode.SIGNED and sign_public is not None:
            self._spend_crypto(frame.source_sid, now)
            self.counters["crypto_signature_checks"] += 1
        try:
            content = mdp.open_payload(
                frame.payload,
                mode,
                shared_key=self._shared_key(frame.source_sid, now) if mode is MdpMode.BOX else None,
                sign_public=sign_public,
            )
        except mdp.MissingKey:
            # servald drops such a frame and relies on the sender repeating it (§10). We fetch
            # the key too, but keep the frame a moment and verify it once the key arrives:
            # that saves a DNA lookup at start-up the 250 ms until its first resend.
            self._request_sign_key(frame.source_sid, now, force=True)
            held = self._awaiting_key.setdefault(frame.source_sid, [])
            if len(held) < HELD_PER_PEER and len(self._awaiting_key) <= HELD_PEERS:
                held.append((frame, source, now))
                self.counters["frames_held_for_key"] += 1
            else:
                self._drop("missing_sign_key")
            return
        if mode is MdpMode.BOX:
            if not self._fresh_nonce(frame.source_sid, frame.payload[: crypto.NONCE_LEN]):
                self._drop("replayed_box")
                return
            self._proven(frame.source_sid, source, now)
        message = mdp.parse_content(content)
        if message.dst_port == mdp.PORT_LINKSTATE:
            self._receive_linkstate(frame, message.body)
        elif message.dst_port == mdp.PORT_KEYMAP:
            self._receive_keymap(frame, mode, message.body, source, now)
        elif message.dst_port == mdp.PORT_DNA:
            if mode is MdpMode.CLEAR:  # nothing proves who asks: do not answer (§11 REQ)
                self._drop("dna_request_unsigned")
                return
            self._receive_dna_request(frame, message, source, now)
        elif message.src_port == mdp.PORT_DNA and mode is MdpMode.BOX:
            self._receive_dna_reply(frame, message, now)
        elif message.dst_port == mdp.PORT_VOMP:
            if mode is not MdpMode.BOX:
                self._drop("vomp_not_boxed")
                return
            ignored_before = self.calls.ignored
            refused_before = self.calls.refused
            progress_before = self.calls.progress
            self.calls.receive(frame.source_sid, parse_vomp(message.body), now)
            if self.calls.ignored != ignored_before:  # no call matched, or an "ignore" cell
                self.counters["vomp_messages_ignored"] += 1
            if self.calls.refused != refused_before:
                self._drop("call_refused_busy")
            if self.calls.progress != progress_before:
                # Only news (a new state, unheard audio) can move a call: a replay cannot.
                self._call_address[frame.source_sid] = (source, True)
        else:
            self.counters["frames_unbound_port"] += 1

    def _receive_linkstate(self, frame: Frame, body: bytes) -> None:
        records, _unknown = linkstate.parse_linkstate(body, frame.source_sid, self.book)
        for record in records:
            if record.is_neighbour_record and record.transmitter_sid == self.sid:
                self.counters["linkstate_heard_us"] += 1

    def _receive_keymap(
        self, frame: Frame, mode: MdpMode, body: bytes, source: object, now: float
    ) -> None:
        request = keymap.parse_keymap(body)
        if request.is_request:
            if mode is not MdpMode.BOX:
                self._drop("keymap_request_not_boxed")
                return
            reply = keymap.encode_reply(self.identity)
            self._send_mdp(
                frame.source_sid,
                mdp.PORT_KEYMAP,
                mdp.PORT_KEYMAP,
                reply,
                source,
                now,
                priority=Priority.HANDSHAKE,
            )
            self.counters["keymap_answered"] += 1
        elif request.is_reply:
            self._spend_crypto(frame.source_sid, now)
            self.counters["crypto_signature_checks"] += 1
            if not request.verify(frame.source_sid):
                self._drop("keymap_reply_forged")
                return
            self.book.learn(frame.source_sid, request.sign_key)
            self.counters["sign_keys_learnt"] += 1
            self._handshake_retry.pop(frame.source_sid, None)
        else:
            self.counters["keymap_ignored"] += 1

    def _receive_dna_request(
        self, frame: Frame, message: mdp.MdpMessage, source: object, now: float
    ) -> None:
        request = parse_dna_request(message.body)
        if not request.matches(self.number):
            return
        reply = encode_dna_reply(self.sid, self.number, self.name)
        self._send_mdp(frame.source_sid, message.src_port, mdp.PORT_DNA, reply, source, now)
        self.counters["dna_answered"] += 1

    def _receive_dna_reply(self, frame: Frame, message: mdp.MdpMessage, now: float) -> None:
        reply = parse_dna_reply(message.body)
        if reply.sid != frame.source_sid:
            self._drop("dna_reply_forged")
            return
        lookup = self.lookups.running(message.dst_port)
        if lookup is None:
            self.counters["dna_reply_unexpected"] += 1
            return
        if not lookup.is_wildcard and reply.did != lookup.number:
            self._drop("dna_reply_wrong_number")
            return
        if not uri_names_sid(reply.uri, reply.sid):
            self._drop("dna_reply_uri_not_its_sid")
            return
        number, first = self.lookups.answer(
            message.dst_port, reply.sid, reply.uri, reply.did, reply.name, now
        )
        if number is None:
            self._drop("dna_answers_full")
            return
        owner = self.lookups.claim(reply.did, reply.sid) if reply.did else reply.sid
        if first:
            self._events.append(DnaAnswer(number, reply.sid, reply.uri, reply.did, reply.name))
        if owner != reply.sid:
            # A second handset claims a number another one answered for first: tell the
            # user, and do not let it take a call placed by number.
            if first:
                self.counters["dna_number_claim_conflicts"] += 1
                self._events.append(NumberClaimConflict(reply.did, owner, reply.sid))
            return
        for pending in [p for p in self._pending_dials if p.number == number]:
            self._pending_dials.remove(pending)
            self._dial_sid(reply.sid, number, now)

    # ============================================================================== sending
    def _tick(self, now: float) -> None:
        """Every 500 ms: broadcast a tick, and tell every neighbour we hear it (§9.1, §9.3)."""
        self._next_tick_at = max(self._ensure_started(now) + TICK_INTERVAL, now)
        if self._next_tick_at <= now:
            self._next_tick_at = now + TICK_INTERVAL
        for sid, held in list(self._awaiting_key.items()):
            kept = [h for h in held if now - h[2] < HOLD_FOR_KEY]
            for _ in range(len(held) - len(kept)):
                self._drop("missing_sign_key")
            if kept:
                self._awaiting_key[sid] = kept
            else:
                del self._awaiting_key[sid]
        for gone in self.neighbours.expire(now):
            self._keys.forget(gone.sid)
            self._events.append(PeerLost(gone.sid))
        self._outbox.append((BROADCAST, None, Priority.USER))
        # Each tick starts the round at another neighbour, so that when the limits on
        # strangers cannot pay for all of them, it is not always the same ones that wait.
        neighbours = list(self.neighbours)
        self._ticks += 1
        start = self._ticks % len(neighbours) if neighbours else 0
        for neighbour in neighbours[start:] + neighbours[:start]:
            self._queue_linkstate(neighbour)
            if not neighbour.confirmed or self.book.sign_key(neighbour.sid) is None:
                self._retry_handshake(neighbour.sid, now)
        seen = self._seen_broadcast_ids  # in arrival order: the oldest come first
        while seen and now - next(iter(seen.values())) >= BROADCAST_ID_MEMORY:
            del seen[next(iter(seen))]

    def _sweep(self, now: float) -> None:
        """Forget what only strangers who have gone needed: every per-SID and per-address
        table returns to the size of the neighbours and calls we have."""
        self._next_sweep_at = now + SWEEP_INTERVAL
        call_sids = {c.remote_sid for c in self.calls.calls()}
        wanted = {self.sid, *call_sids, *self._awaiting_key}
        wanted.update(n.sid for n in self.neighbours)
        wanted.update(self.neighbours.claim_sids())
        wanted.update(self.lookups.cached_sids(now))
        # a SID unwanted at two sweeps in a row goes (so one just learnt gets a grace period)
        unwanted = {sid for sid in self.book if sid not in wanted}
        for sid in unwanted & self._unwanted_at_last_sweep:
            self.book.forget(sid)
        self._unwanted_at_last_sweep = unwanted
        for table in (self._keymap_asked, self._nonces, self._handshake_retry):
            for sid in [sid for sid in table if sid not in wanted]:
                del table[sid]
        for sid in [sid for sid in self._keys.peers() if sid not in wanted]:
            self._keys.forget(sid)
        for sid in [sid for sid in self._call_address if sid not in call_sids]:
            del self._call_address[sid]
        in_use: set[object] = {BROADCAST, *(n.address for n in self.neighbours)}
        in_use.update(address for address, _proven in self._call_address.values())
        self.neighbours.forget_packet_seqs(in_use)
        self._addresses.expire(now)
        self._explained_to.expire(now)
        self._explain_asked.expire(now)
        self._challenged.expire(now)
        self.lookups.expire(now)

    def _queue_linkstate(self, neighbour: Neighbour) -> None:
        acks = neighbour.unicast_acks
        record = linkstate.neighbour_record(
            neighbour.sid,
            neighbour.interface,
            unicast=True,
            ack_seq=acks.ack_seq,
            ack_mask=acks.mask,
        )
        body = mdp.encode_content(
            mdp.PORT_LINKSTATE, mdp.PORT_LINKSTATE, linkstate.encode_linkstate([record])
        )
        frame = Frame.local_broadcast(self.sid, body)  # its frame seq is given when sent
        chosen = neighbour.sid in self._chosen_calls()
        self._outbox.append(
            (neighbour.address, frame, Priority.USER if chosen else Priority.ROUTINE)
        )
        neighbour.ack_due_at = None

    def _run_lookups(self, now: float) -> None:
        for lookup in self.lookups.due(now):
            content = mdp.encode_content(
                mdp.PORT_DNA, lookup.port, encode_dna_request(lookup.number)
            )
            payload = mdp.seal(content, MdpMode.SIGNED, ed_secret=self.identity.ed_secret)
            frame = Frame.local_broadcast(
                self.sid,
                payload,
                crypto_flags=MdpMode.SIGNED,
                frame_seq=self.neighbours.next_frame_seq(),
            )
            # Broadcast, and the same frame (same frame seq, so receivers drop the second copy)
            # unicast to every neighbour, as servald does: Wi-Fi broadcasts are lossy, and
            # servald ignores broadcasts from outside its subnet (§1).
            self._outbox.append((BROADCAST, frame, Priority.USER))
            for neighbour in self.neighbours:
                self._outbox.append((neighbour.address, frame, Priority.ROUTINE))
            self.counters["dna_requests_sent"] += 1
        for lookup in self.lookups.finished(now):
            self._events.append(DnaLookupFinished(lookup.number, lookup.answered))
        for pending in [p for p in self._pending_dials if p.deadline <= now]:
            self._pending_dials.remove(pending)

    def _dial_sid(self, sid: bytes, number: str, now: float) -> int:
        call = self.calls.dial(sid, number, now)
        self._flush_calls()
        return call.call_id

    def _flush_calls(self) -> None:
        """Turn the call table's messages and events into frames and Node events."""
        if self.calls.outgoing:
            live = {c.remote_sid for c in self.calls.calls()}
            chosen = self._chosen_calls()
            for remote_sid, message in self.calls.outgoing:
                if remote_sid in live and remote_sid not in self._call_address:
                    neighbour = self.neighbours.get(remote_sid)
                    if neighbour is not None:
                        self._call_address[remote_sid] = (neighbour.address, False)
                try:
                    self._send_mdp(
                        remote_sid,
                        mdp.PORT_VOMP,
                        mdp.PORT_VOMP,
                        encode_vomp(message),
                        None,
                        None,
                        priority=Priority.USER if remote_sid in chosen else Priority.ROUTINE,
                    )
                except crypto.CryptoFailure as exc:
                    self._drop(_reason(exc))
            self.calls.outgoing.clear()
        self._events.extend(self.calls.events)
        self.calls.events.clear()

    def _send_mdp(
        self,
        sid: bytes,
        dst_port: int,
        src_port: int,
        body: bytes,
        fallback: object,
        now: float | None,
        *,
        address: object = None,
        priority: Priority = Priority.ROUTINE,
    ) -> None:
        """A crypto_box frame to one peer (every unicast service servald boxes, §7)."""
        content = mdp.encode_content(dst_port, src_port, body)
        payload = mdp.seal(
            content, MdpMode.BOX, shared_key=self._shared_key(sid, now), nonce=self._nonce()
        )
        frame = Frame.to_peer(self.sid, sid, payload, crypto_flags=MdpMode.BOX)
        self._send_frame(sid, frame, fallback=fallback, address=address, priority=priority)

    def _send_frame(
        self,
        sid: bytes,
        frame: Frame,
        *,
        fallback: object = None,
        address: object = None,
        priority: Priority = Priority.ROUTINE,
    ) -> None:
        """Queue `frame` for `sid` at its call's address, else its neighbour's, else
        `fallback`; its frame seq is given when it is actually sent."""
        if address is None:
            pinned = self._call_address.get(sid)
            neighbour = self.neighbours.get(sid)
            if pinned is not None:
                address = pinned[0]
            elif neighbour is not None:
                address = neighbour.address
            else:
                address = fallback
        if address is None:
            self._drop("no_address_for_peer")
            return
        self._outbox.append((address, frame, priority))

    def _ask_to_explain(
        self, prefixes: list[bytes], sender: bytes | None, source: object, now: float
    ) -> None:
        if not self._explain_asked.allow(sender if sender is not None else source, now):
            self.counters["please_explain_ask_deferred"] += 1  # servald: once per 500 ms
            return
        payload = please_explain.encode_please_explain(
            [please_explain.ExplainRequest(prefix) for prefix in prefixes]
        )
        self.counters["please_explain_asked"] += 1
        if sender is not None:
            frame = Frame.to_peer(self.sid, sender, payload, type=TYPE_PLEASE_EXPLAIN)
            self._send_frame(sender, frame, fallback=source)
            return
        frame = Frame.local_broadcast(
            self.sid, payload, type=TYPE_PLEASE_EXPLAIN, frame_seq=self.neighbours.next_frame_seq()
        )
        self._outbox.append((BROADCAST, frame, Priority.USER))
        self._outbox.append((source, frame, Priority.ROUTINE))

    def _request_sign_key(
        self, sid: bytes, now: float, *, force: bool = False, address: object = None
    ) -> None:
        asked = self._keymap_asked.get(sid)
        if address is None:
            if asked is not None and now - asked < KEYMAP_RETRY:
                return
            if asked is not None and not force:
                return
        if not self._keys.cached(sid, self.sid) and not self._may_spend_crypto(sid, now):
            self.counters["keymap_request_deferred"] += 1  # asked again on its next packet
            return
        self._keymap_asked[sid] = now
        request = keymap.encode_request()
        self._send_mdp(
            sid,
            mdp.PORT_KEYMAP,
            mdp.PORT_KEYMAP,
            request,
            None,
            now,
            address=address,
            priority=Priority.HANDSHAKE,
        )
        self.counters["keymap_requests_sent"] += 1

    def _retry_handshake(self, sid: bytes, now: float) -> None:
        """Ask a neighbour that has not proved its address for its key again, when due."""
        due = self._handshake_retry.get(sid)
        if due is None:  # the first request went out when it was first heard
            self._handshake_retry[sid] = (now + self._stretched(HANDSHAKE_RETRY), HANDSHAKE_RETRY)
            return
        when, wait = due
        if now < when:
            return
        wait = min(2 * wait, HANDSHAKE_RETRY_MAX)
        self._handshake_retry[sid] = (now + self._stretched(wait), wait)
        self.counters["handshake_retries"] += 1
        self._request_sign_key(sid, now, force=True)

    def _stretched(self, wait: float) -> float:
        return wait * (1.0 + self._rng.random())

    def _packets(
        self, destination: object, frames: list[tuple[Frame | None, Priority]], now: float
    ) -> list[bytes]:
        """Pack frames for one destination into as few datagrams as the MTU allows (§1).

        An unproven address gets only what its budget allows (`AddressLedger`), and frames
        to such addresses are rate-limited: each one uses up one of our frame seqs.
        """
        unicast = destination is not BROADCAST

        room = MTU - HEADER_LEN
        bodies: list[bytearray] = [bytearray()]
        tick = False
        for frame, priority in frames:
            if frame is None:  # a tick: the header alone is enough
                tick = True
                continue
            needs_seq = frame.frame_seq is None
            try:
                if needs_seq:
                    frame.frame_seq = 0  # a placeholder of the same size, to measure it
                encoded = encode_frame(frame)
            except ValueError:
                self._drop("frame_unencodable")
                continue
            if len(encoded) > room:
                self._drop("frame_too_large")
                continue
            new_body = len(bodies[-1]) + len(encoded) > room
            if unicast and priority is not Priority.USER:
                cost = len(encoded) + (HEADER_LEN if new_body or not bodies[-1] else 0)
                proven = self._addresses.is_verified(destination)
                routine = priority is Priority.ROUTINE
                keep_frames = HANDSHAKE_KEEP_FRAMES if routine else 0.0
                if not proven and not self._unproven_frames.take(now, keep=keep_frames):
                    self.counters["withheld_unproven_frame_rate"] += 1
                    continue
                if not self._other_frames.take(now, keep=keep_frames):
                    self.counters["withheld_frame_rate"] += 1
                    continue
                keep_bytes = HANDSHAKE_KEEP_BYTES if routine else 0
                if not self._addresses.may_send(destination, cost, now, keep=keep_bytes):
                    self.counters["withheld_send_budget"] += 1
                    continue
            if needs_seq:
                frame.frame_seq = self.neighbours.next_frame_seq()
                encoded = encode_frame(frame)
            if new_body:
                bodies.append(bytearray())
            bodies[-1] += encoded
        if len(bodies) > 1 and not bodies[-1]:
            bodies.pop()
        if not bodies[0] and not tick:
            return []  # every frame was refused and no tick was asked for
        return [self._header(destination, unicast) + bytes(body) for body in bodies]

    def _header(self, destination: object, unicast: bool) -> bytes:
        packet = Packet(
            self.sid,
            flags=PACKET_UNICAST if unicast else 0,
            seq=self.neighbours.next_packet_seq(destination),
        )
        return encode_header(packet)

    # ============================================================================= helpers
    def _ensure_started(self, now: float) -> float:
        """When the next tick is due; the first goes out at once (§14 step 1)."""
        if self._next_tick_at is None:
            self._next_tick_at = now
            self._next_sweep_at = now + SWEEP_INTERVAL
        return self._next_tick_at

    def _shared_key(self, sid: bytes, now: float | None) -> bytes:
        """The crypto_box key with `sid`. Deriving a new one (X25519) is charged to the
        crypto budget, except for call messages (`now` None): their SID has a call."""
        if not self._keys.cached(sid, self.sid):
            if now is not None:
                self._spend_crypto(sid, now)
            self.counters["crypto_key_derivations"] += 1
        return self._keys.get(sid, self.sid, self.identity.box_secret)

    def _chosen_calls(self) -> set[bytes]:
        """Peers of calls the user placed or answered: what we send them is the user's to
        spend, not a stranger's (a call that only rings is still the stranger's doing)."""
        return {
            c.remote_sid
            for c in self.calls.calls()
            if c.is_caller or c.local_state == CallState.INCALL
        }

    def _proven_sid(self, sid: bytes) -> bool:
        neighbour = self.neighbours.get(sid)
        if neighbour is not None and neighbour.confirmed:
            return True
        return any(c.remote_sid == sid for c in self.calls.calls())

    def _may_spend_crypto(self, sid: bytes, now: float) -> bool:
        """Whether one more costly crypto operation for `sid` fits this datagram's and this
        second's budget (a proven SID always may); spends it if so."""
        if self._proven_sid(sid):
            return True
        if self._crypto_spent >= CRYPTO_PER_DATAGRAM or not self._crypto_rate.take(now):
            return False
        self._crypto_spent += 1
        return True

    def _spend_crypto(self, sid: bytes, now: float) -> None:
        if not self._may_spend_crypto(sid, now):
            raise CryptoBudgetExceeded("too many key derivations or signature checks")

    def _fresh_nonce(self, sid: bytes, nonce: bytes) -> bool:
        seen = self._nonces.get(sid)
        if seen is None:
            seen = self._nonces[sid] = RecentKeys(NONCES_PER_PEER)
            if len(self._nonces) > NONCE_PEERS:
                self._nonces.popitem(last=False)
        self._nonces.move_to_end(sid)
        return seen.add(bytes(nonce))

    def _proven(self, sid: bytes, source: object, now: float) -> None:
        """A fresh crypto_box from `sid` came from `source`: that address is really there."""
        self._addresses.verify(source, now)
        if self.neighbours.confirm(sid, source):
            self.counters["neighbour_moved"] += 1
            pinned = self._call_address.get(sid)
            if pinned is not None and not pinned[1]:
                self._call_address[sid] = (source, False)

    def _nonce(self) -> bytes:
        nonce = bytearray(self._rng.randbytes(crypto.NONCE_LEN))
        nonce[0] &= 0x7F
        return bytes(nonce)

    def _drop(self, reason: str) -> None:
        """Count (by reason) and report one refused input."""
        self.counters[f"dropped_{reason}"] += 1
        self._events.append(PacketDropped(reason))


class CryptoBudgetExceeded(crypto.CryptoFailure):
    """A stranger asked for more key derivations or signature checks than we give it."""

    reason = "crypto_budget"


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", type(exc).__name__)
