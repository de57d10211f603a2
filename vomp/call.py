"""VoMP v2 calls (SPEC §12): the call table, the §12.3 transition table, timers and audio numbering.

Rules this module keeps:
- Everything that moves a call's state lives here; `Node` only decrypts, matches SIDs and
  delivers `VompMessage`s, then wraps what we return in MDP frames.
- Every message is a full snapshot of both sides' states, and states only move forward, so any
  message may be lost, repeated or reordered. We therefore never wait for an answer: we send our
  status on every change and every second, and we treat one CALLENDED as final.

Theory of operation. A received message is matched to a call (§12.2) or, if it is a fresh
CALLPREP/NOCALL, creates one. Then §12.3 runs: steps 1-3 may end the call, and `TRANSITIONS`
(the table of step 4, row for row) says what the pair (mine, their) means. A pair that is not in
the table makes us ignore the whole message. Each call has a 1-second tick that re-sends status,
applies the dial/ring/network timeouts of §12.5 and deletes a call whose both sides have ended.

Our own rules on top of §12 (the wire is unchanged, so servald sees nothing new):
- Every end carries an `EndReason`, inferred from the states we last knew (servald sends none).
- Answering always passes through RINGINGIN, so the caller hears ring-back first.
- Simultaneous dial (§12.2): the call placed by the lower SID is kept. The higher SID hangs up
  its own outgoing call and takes the incoming one; the lower SID rejects the incoming one. Both
  sides compute the same answer, so exactly one call survives; a servald peer (which keeps both
  calls) still ends up with at most one. When the peer refused our call before ringing (busy:
  its user was dialling us, or its first CALLPREP was lost so its rejection of ours came
  first) and then calls us within `SIMULTANEOUS_WINDOW`, its call is marked as replacing ours,
  whatever the SIDs: ours is gone, so both sides already agree.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from vomp.codecs import choose_send_codec
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    EndReason,
    Event,
    IncomingCall,
)
from vomp.limits import RecentKeys
from vomp.messages import AudioNumbering, CallState, VompAudio, VompMessage

NOCALL = CallState.NOCALL
CALLPREP = CallState.CALLPREP
RINGINGOUT = CallState.RINGINGOUT
RINGINGIN = CallState.RINGINGIN
INCALL = CallState.INCALL
CALLENDED = CallState.CALLENDED

STATUS_INTERVAL = 1.0  # s, §12.4 [REQ]
DIAL_TIMEOUT = 15.0  # s, §12.5
RING_TIMEOUT = 30.0
CALLEE_RING_GRACE = 2.0
"""The called side rings this much longer than RING_TIMEOUT: both sides' clocks start within a
round trip of each other, so with equal timeouts either could end an unanswered call first,
and the caller would be told "rejected" instead of "no answer"."""
NETWORK_TIMEOUT = 30.0
MAX_CALLS = 16  # as servald: a peer cannot fill our memory with calls
MAX_INCOMING_PER_PEER = 2  # concurrent incoming calls from one SID; more are answered busy
SIMULTANEOUS_WINDOW = 5.0  # s a refused outgoing call may still give way to the peer's call
SESSIONS_REMEMBERED = 4096  # (SID, session) pairs that may never start a call again


class CallError(ValueError):
    """A local command that the call's state does not allow (e.g. answering an ended call)."""


class Outcome(enum.Enum):
    """What step 4 of §12.3 does for a (mine, their) pair."""

    NOTHING = "nothing"
    ENDED_IF_CALLER = "caller: busy -> CALLENDED; callee: wait for the local user to ring"
    RINGINGOUT_IF_CALLER = "caller: -> RINGINGOUT; callee: -> CALLENDED"
    INCALL = "-> INCALL"
    ANSWERED = "-> INCALL, then play the audio if present"
    PLAY = "play the audio if present"


# SPEC §12.3 step 4, row for row (mine, their). A pair not listed: ignore the whole message.
TRANSITIONS: dict[tuple[CallState, CallState], Outcome] = {
    # NOCALL, CALLPREP: nothing (our reply carries our codec list)
    (NOCALL, CALLPREP): Outcome.NOTHING,
    # NOCALL or RINGINGIN, RINGINGOUT: caller -> CALLENDED (busy); callee waits to ring
    (NOCALL, RINGINGOUT): Outcome.ENDED_IF_CALLER,
    (RINGINGIN, RINGINGOUT): Outcome.ENDED_IF_CALLER,
    # CALLPREP, NOCALL or CALLPREP: caller -> RINGINGOUT, otherwise CALLENDED
    (CALLPREP, NOCALL): Outcome.RINGINGOUT_IF_CALLER,
    (CALLPREP, CALLPREP): Outcome.RINGINGOUT_IF_CALLER,
    # RINGINGOUT, NOCALL / CALLPREP / RINGINGIN: nothing (RINGINGIN: play ring-back)
    (RINGINGOUT, NOCALL): Outcome.NOTHING,
    (RINGINGOUT, CALLPREP): Outcome.NOTHING,
    (RINGINGOUT, RINGINGIN): Outcome.NOTHING,
    # RINGINGOUT, RINGINGOUT: -> INCALL (never observed)
    (RINGINGOUT, RINGINGOUT): Outcome.INCALL,
    # RINGINGOUT, INCALL: -> INCALL (answered), then play the audio if present
    (RINGINGOUT, INCALL): Outcome.ANSWERED,
    # INCALL, RINGINGOUT: nothing
    (INCALL, RINGINGOUT): Outcome.NOTHING,
    # INCALL, INCALL: play the audio if present
    (INCALL, INCALL): Outcome.PLAY,
    # CALLENDED, any: nothing
    **{(CALLENDED, their): Outcome.NOTHING for their in CallState},
}


@dataclass
class Call:
    """One call as this side sees it. States only increase."""

    call_id: int
    remote_sid: bytes
    local_session: int
    remote_session: int
    is_caller: bool
    created_at: float
    last_activity: float
    next_tick_at: float
    local_state: CallState = NOCALL
    remote_state: CallState = NOCALL
    local_number: str = ""
    remote_number: str = ""
    remote_codecs: tuple[int, ...] = ()
    last_sent_state_byte: int | None = None
    audio_time: int = 0  # in 20 ms units
    audio_seq: int = 0
    audio_in: AudioNumbering = field(default_factory=AudioNumbering)
    end_reason: EndReason | None = None
    end_detail: str = ""

    @property
    def state_byte(self) -> int:
        return (int(self.remote_state) << 4) | int(self.local_state)


class CallTable:
    """All calls of one local identity: feed it messages and commands, collect messages to send.

    `outgoing` holds (remote SID, VompMessage) pairs for `Node` to encrypt and send; `events`
    holds what the application should hear about.
    """

    def __init__(
        self,
        local_number: str,
        codecs: tuple[int, ...],
        rng: random.Random,
        *,
        can_ring: bool = True,
        local_sid: bytes = b"",
    ) -> None:
        if not codecs:
            raise ValueError("a VoMP endpoint needs at least one codec")
        self.local_number = local_number
        self.codecs = tuple(sorted(set(codecs)))
        self.can_ring = can_ring
        self.local_sid = local_sid  # for the simultaneous-dial tie-break
        # peer SID -> (our outgoing call it ended before ringing, when): see SIMULTANEOUS_WINDOW
        self._refused_by: dict[bytes, tuple[int, float]] = {}
        self._rng = rng
        self._calls: dict[int, Call] = {}
        self._next_call_id = 1
        # (remote SID, remote session) of every call the peer started: a late or replayed
        # CALLPREP must never start another (§12.5 "ignore anything that arrives for a session
        # already deleted"). Capped by count, not time, so no replay is ever old enough.
        self._sessions_seen = RecentKeys(SESSIONS_REMEMBERED)
        self.outgoing: list[tuple[bytes, VompMessage]] = []
        self.events: list[Event] = []
        self.ignored = 0  # messages that matched nothing or hit an "ignore" cell
        self.refused = 0  # CALLPREPs answered busy: table full, or too many from one peer
        self.progress = 0  # state changes and new audio: what only a live peer can cause

    # ----------------------------------------------------------------- queries
    def get(self, call_id: int) -> Call | None:
        return self._calls.get(call_id)

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def next_timer(self) -> float | None:
        return min((c.next_tick_at for c in self._calls.values()), default=None)

    # ----------------------------------------------------------- local actions
    def dial(self, remote_sid: bytes, called_number: str, now: float) -> Call:
        """Start an outgoing call: CALLPREP, codec list and both numbers go out now."""
        call = self._new_call(remote_sid, 0, is_caller=True, now=now)
        call.remote_number = called_number
        call.local_number = self.local_number
        self._set_states(call, CALLPREP, call.remote_state)
        self._send_status(call)
        return call

    def ring(self, call_id: int, now: float) -> None:
        """Tell the caller we are ringing (callee only, §12.4)."""
        call = self._live(call_id)
        if not (call.local_state < RINGINGIN and call.remote_state == RINGINGOUT):
            raise CallError(f"cannot ring call {call_id} in state {call.state_byte:#04x}")
        self._set_states(call, RINGINGIN, call.remote_state)
        self._send_if_changed(call)

    def answer(self, call_id: int, now: float) -> None:
        """Pick up (callee only): INCALL, and the ring timeout clock starts again."""
        call = self._live(call_id)
        if not (call.local_state <= RINGINGIN and call.remote_state == RINGINGOUT):
            raise CallError(f"cannot answer call {call_id} in state {call.state_byte:#04x}")
        call.created_at = now
        if call.local_state < RINGINGIN:  # the caller must see us ring, if only for a moment
            self._set_states(call, RINGINGIN, call.remote_state)
            self._send_if_changed(call)
        self._set_states(call, INCALL, call.remote_state)
        self._send_if_changed(call)

    def hang_up(
        self, call_id: int, now: float, reason: EndReason = EndReason.HUNG_UP, detail: str = ""
    ) -> None:
        """Hang up, reject or cancel. Harmless on a call that has already gone."""
        call = self._calls.get(call_id)
        if call is None or call.local_state == CALLENDED:
            return
        self._set_states(call, CALLENDED, call.remote_state, reason, detail)
        self._send_if_changed(call)

    def send_audio(self, call_id: int, codec: int, payload: bytes, duration_ms: int) -> bool:
        """Queue one audio frame; False (nothing sent) unless the call is INCALL on our side.

        `duration_ms` must be a multiple of 20: servald drops a second frame with the same time
        field (§12.6), so every frame must advance time by at least one 20 ms unit.
        """
        if duration_ms < 20 or duration_ms % 20:
            raise ValueError(f"audio frame duration {duration_ms} ms is not a multiple of 20 ms")
        call = self._calls.get(call_id)
        if call is None or call.local_state != INCALL or call.remote_state == CALLENDED:
            return False
        frame = VompAudio(codec, call.audio_time & 0xFFFF, call.audio_seq & 0xFFFF, payload)
        self.outgoing.append((call.remote_sid, self._message(call, audio=frame)))
        call.audio_time += duration_ms // 20
        call.audio_seq += 1
        return True

    # ------------------------------------------------------------------ timers
    def handle_timer(self, now: float) -> None:
        """Run every call's 1-second tick that is due (§12.4 status, §12.5 timeouts)."""
        for call in list(self._calls.values()):
            if call.next_tick_at <= now:
                self._tick(call, now)
        self._refused_by = {
            sid: (call_id, at)
            for sid, (call_id, at) in self._refused_by.items()
            if now - at < SIMULTANEOUS_WINDOW
        }

    def _tick(self, call: Call, now: float) -> None:
        call.next_tick_at = now + STATUS_INTERVAL
        if call.local_state == CALLENDED and call.remote_state == CALLENDED:
            self._delete(call, now, timed_out=False)
            return
        since_created = now - call.created_at
        reason = None
        if call.remote_state < RINGINGOUT and since_created >= DIAL_TIMEOUT:
            reason = EndReason.NO_REPLY
        elif call.local_state < INCALL and since_created >= self._ring_timeout(call):
            reason = EndReason.NO_ANSWER
        elif now - call.last_activity >= NETWORK_TIMEOUT:
            reason = EndReason.NETWORK_LOST
        if reason is not None:
            self._set_states(call, CALLENDED, CALLENDED, reason)
            self._send_status(call)
            self._delete(call, now, timed_out=True)
            return
        self._send_status(call)

    @staticmethod
    def _ring_timeout(call: Call) -> float:
        return RING_TIMEOUT if call.is_caller else RING_TIMEOUT + CALLEE_RING_GRACE

    # --------------------------------------------------------------- receiving
    def receive(self, remote_sid: bytes, msg: VompMessage, now: float) -> None:
        """Apply one decrypted VoMP message from `remote_sid` (§12.2 then §12.3)."""
        their_nibble = msg.sender_state
        if not (NOCALL <= their_nibble <= CALLENDED):
            self.ignored += 1
            return
        call = self._match(remote_sid, msg)
        if call is None:
            call = self._maybe_create(remote_sid, msg, now)
            if call is None:
                self.ignored += 1
                return
        self._apply(call, msg, now)

    def _match(self, remote_sid: bytes, msg: VompMessage) -> Call | None:
        for call in self._calls.values():
            if call.remote_sid != remote_sid:
                continue
            compared = False
            if call.remote_session and msg.sender_session:
                if call.remote_session != msg.sender_session:
                    continue
                compared = True
            if msg.recipient_session:
                if msg.recipient_session != call.local_session:
                    continue
                compared = True
            if compared:
                if not call.remote_session and msg.sender_session:
                    call.remote_session = msg.sender_session
                return call
        return None

    def _maybe_create(self, remote_sid: bytes, msg: VompMessage, now: float) -> Call | None:
        if not (
            msg.sender_state == CALLPREP
            and msg.recipient_state == NOCALL
            and msg.recipient_session == 0
            and msg.sender_session != 0
        ):
            return None
        if not self._sessions_seen.add((remote_sid, msg.sender_session)):
            return None  # a late copy (or a replay) of a call this peer started before
        from_peer = [c for c in self._calls.values() if c.remote_sid == remote_sid]
        incoming = sum(not c.is_caller for c in from_peer)
        if len(self._calls) >= MAX_CALLS or incoming >= MAX_INCOMING_PER_PEER:
            self.refused += 1
            self._send_busy(remote_sid, msg.sender_session)
            return None
        call = self._new_call(remote_sid, msg.sender_session, is_caller=False, now=now)
        call.local_number = msg.called_number or ""
        call.remote_number = msg.caller_number or ""
        ours = next(
            (
                c
                for c in self._calls.values()
                if c.is_caller
                and c.remote_sid == remote_sid
                and CALLPREP <= c.local_state <= RINGINGOUT
            ),
            None,
        )
        refused_id, refused_at = self._refused_by.pop(remote_sid, (None, -SIMULTANEOUS_WINDOW))
        if not self.can_ring:
            call.local_state = CALLENDED
            call.end_reason = EndReason.CANNOT_RING
        elif ours is not None and not self._their_call_wins(remote_sid):
            call.local_state = CALLENDED
            call.end_reason = EndReason.SIMULTANEOUS_DIAL
        else:
            replaces = ours.call_id if ours is not None else None
            if ours is None and now - refused_at < SIMULTANEOUS_WINDOW:
                replaces = refused_id  # only their call is left: nothing to agree on
            self.events.append(
                IncomingCall(
                    call.call_id, remote_sid, call.remote_number, call.local_number, replaces
                )
            )
            if ours is not None:
                ours.remote_number = ours.remote_number or call.remote_number
                self.hang_up(ours.call_id, now, EndReason.SIMULTANEOUS_DIAL)
        return call

    def _their_call_wins(self, remote_sid: bytes) -> bool:
        """Simultaneous dial: the call placed by the lower SID is kept (both sides agree).
        Without a local SID we cannot compare, and keep our own call as §12.2 suggests."""
        return bool(self.local_sid) and remote_sid < self.local_sid

    def _apply(self, call: Call, msg: VompMessage, now: float) -> None:
        their = max(CallState(msg.sender_state), call.remote_state)
        mine = call.local_state
        reason: EndReason | None = None
        detail = ""
        if not self.can_ring:  # step 1
            mine = CALLENDED
            reason = EndReason.CANNOT_RING
        if mine < RINGINGOUT and their < RINGINGOUT:  # step 2
            if msg.codecs is not None:
                call.remote_codecs = tuple(msg.codecs)
            if msg.caller_number and not call.is_caller and not call.remote_number:
                call.remote_number = msg.caller_number
            if choose_send_codec(self.codecs, call.remote_codecs) is None:
                mine = CALLENDED
                reason = reason or EndReason.NO_SHARED_CODEC
                offered = ", ".join(f"{c:#04x}" for c in call.remote_codecs)
                detail = f"no shared codec; far end offers [{offered}]"
        if their == CALLENDED:  # step 3
            mine = CALLENDED
            reason = reason or self._far_end_reason(call)
        outcome = TRANSITIONS.get((mine, their))  # step 4
        if outcome is None:
            self.ignored += 1
            return
        play = False
        if outcome is Outcome.ENDED_IF_CALLER:
            if call.is_caller:
                mine = CALLENDED
                reason = reason or EndReason.BUSY
        elif outcome is Outcome.RINGINGOUT_IF_CALLER:
            mine = RINGINGOUT if call.is_caller else CALLENDED
            if not call.is_caller:
                reason = reason or EndReason.PROTOCOL
        elif outcome is Outcome.INCALL:
            mine = INCALL
        elif outcome is Outcome.ANSWERED:
            mine = INCALL
            play = True
        elif outcome is Outcome.PLAY:
            play = True
        if mine == INCALL and call.local_state < INCALL:
            call.audio_time = call.audio_seq = 0
        refused_here = call.is_caller and call.end_reason is None and reason is EndReason.BUSY
        self._set_states(call, mine, their, reason, detail)  # step 5
        if refused_here and call.end_reason is EndReason.BUSY:
            self._refused_by[call.remote_sid] = (call.call_id, now)
        call.last_activity = now
        self._send_if_changed(call)
        if play and msg.audio is not None:
            self._play(call, msg.audio)

    @staticmethod
    def _far_end_reason(call: Call) -> EndReason:
        """Why the far end's CALLENDED ended the call, judged by its last state we knew."""
        if call.local_state >= INCALL:
            return EndReason.ENDED_BY_FAR_END
        if not call.is_caller:
            return EndReason.CANCELLED
        if call.remote_state == RINGINGIN:
            return EndReason.REJECTED
        if call.remote_state < RINGINGIN:
            return EndReason.BUSY
        return EndReason.ENDED_BY_FAR_END

    def _play(self, call: Call, audio: VompAudio) -> None:
        rebuilt = call.audio_in.accept(audio.time_field, audio.seq_field)
        if rebuilt is None:
            return
        time_ms, seq = rebuilt
        self.progress += 1
        self.events.append(AudioFrameReceived(call.call_id, audio.codec, time_ms, seq, audio.data))

    # ----------------------------------------------------------------- helpers
    def _live(self, call_id: int) -> Call:
        call = self._calls.get(call_id)
        if call is None:
            raise CallError(f"no call {call_id}")
        return call

    def _new_call(self, remote_sid: bytes, remote_session: int, *, is_caller: bool, now: float):
        in_use = {c.local_session for c in self._calls.values()}
        in_use |= {c.remote_session for c in self._calls.values()}
        in_use.add(remote_session)
        session = 0
        while session == 0 or session in in_use:
            session = self._rng.randrange(1, 0x10000)
        call = Call(
            call_id=self._next_call_id,
            remote_sid=remote_sid,
            local_session=session,
            remote_session=remote_session,
            is_caller=is_caller,
            created_at=now,
            last_activity=now,
            next_tick_at=now + STATUS_INTERVAL,
        )
        self._next_call_id += 1
        self._calls[call.call_id] = call
        return call

    def _set_states(
        self,
        call: Call,
        mine: CallState,
        their: CallState,
        reason: EndReason | None = None,
        detail: str = "",
    ) -> None:
        new_local = max(call.local_state, CallState(mine))
        new_remote = max(call.remote_state, CallState(their))
        if (new_local, new_remote) == (call.local_state, call.remote_state):
            return
        if new_local == CALLENDED and call.end_reason is None:
            call.end_reason = reason or EndReason.HUNG_UP
            call.end_detail = detail or call.end_reason.value
        call.local_state, call.remote_state = new_local, new_remote
        self.progress += 1
        self.events.append(
            CallStateChanged(
                call.call_id,
                call.local_session,
                call.remote_session,
                int(new_local),
                int(new_remote),
                call.remote_sid,
                call.remote_number,
                call.remote_codecs,
                call.end_reason,
                call.end_detail,
            )
        )

    def _send_if_changed(self, call: Call) -> None:
        if call.state_byte != call.last_sent_state_byte:
            self._send_status(call)

    def _send_busy(self, remote_sid: bytes, remote_session: int) -> None:
        """Refuse a call we keep no state for: one CALLENDED naming the caller's session."""
        busy = VompMessage(
            sender_session=self._rng.randrange(1, 0x10000),
            recipient_session=remote_session,
            sender_state=CALLENDED,
            recipient_state=CALLPREP,
        )
        self.outgoing.append((remote_sid, busy))

    def _send_status(self, call: Call) -> None:
        self.outgoing.append((call.remote_sid, self._message(call)))
        call.last_sent_state_byte = call.state_byte

    def _message(self, call: Call, audio: VompAudio | None = None) -> VompMessage:
        with_codecs = audio is None and call.local_state < RINGINGOUT
        with_codecs = with_codecs and call.remote_state < RINGINGOUT
        with_numbers = with_codecs and call.is_caller
        return VompMessage(
            sender_session=call.local_session,
            recipient_session=call.remote_session,
            sender_state=call.local_state,
            recipient_state=call.remote_state,
            codecs=self.codecs if with_codecs else None,
            caller_number=call.local_number if with_numbers else None,
            called_number=call.remote_number if with_numbers else None,
            audio=audio,
        )

    def _delete(self, call: Call, now: float, *, timed_out: bool) -> None:
        del self._calls[call.call_id]
        if call.remote_session:
            self._sessions_seen.add((call.remote_sid, call.remote_session))
        reason = call.end_reason or EndReason.HUNG_UP
        self.events.append(
            CallEnded(
                call.call_id, call.remote_sid, timed_out, reason, call.end_detail or reason.value
            )
        )
