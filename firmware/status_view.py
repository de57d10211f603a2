"""The daemon's control-socket results as text for a person on a small terminal.

Used by the diagnostics shell (`handset shell`) and for systemd's one-line STATUS. Every
function is total: a field that is missing or of an unexpected type shows as "-" rather than
breaking the screen, since the answer comes from another process that may be older or newer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SID_SHOWN = 16
"""Hex digits of a SID shown in tables (servald abridges to 16 and a star)."""


def one_line(status: Any) -> str:
    """What the handset is doing, in one line: "idle, 3 peers", "in call with 5551234, 0 % loss"."""
    status = _mapping(status)
    mesh = _mapping(status.get("mesh"))
    call = _mapping(status.get("call"))
    state = _text(status.get("state"))
    if mesh and mesh.get("ready") is False:
        return f"waiting for the mesh: {_text(mesh.get('waiting_for'))}"
    if call:
        number = _text(call.get("peer_number"))
        if state == "in call":
            return f"in call with {number}, {loss(call.get('audio'))} loss"
        if state == "ringing":
            return f"ringing: {number} calling"
        if state == "ringing out":
            return f"calling {number}"
        return f"{state} {number}"
    peers = status.get("peers")
    count = peers if isinstance(peers, int) else len(_sequence(peers))
    return f"{state}, {count} peer{'' if count == 1 else 's'}"


def loss(audio: Any) -> str:
    """Share of the far end's frames lost, e.g. "0 %", "2.5 %"; "-" before any frame."""
    audio = _mapping(audio)
    lost, received = audio.get("lost"), audio.get("frames_received")
    if not isinstance(lost, int) or not isinstance(received, int) or lost + received <= 0:
        return "- %" if not audio else "0 %"
    share = 100 * lost / (lost + received)
    return f"{share:.0f} %" if share == int(share) or share >= 10 else f"{share:.1f} %"


def duration(seconds: Any) -> str:
    """42 s, 3 min 05 s, 2 h 03 min."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def short_sid(sid: Any) -> str:
    text = _text(sid)
    return text[:SID_SHOWN] + "*" if len(text) > SID_SHOWN else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; "(none)" for no rows."""
    if not rows:
        return "(none)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def format_status(status: Any) -> str:
    status = _mapping(status)
    lines = [
        f"{one_line(status)}",
        f"number {_text(status.get('number'))}  name {_text(status.get('name'))}",
        f"sid    {_text(status.get('sid'))}",
    ]
    call = _mapping(status.get("call"))
    if call:
        lines.append(_call_block(call))
    mesh = _mapping(status.get("mesh"))
    if mesh:
        lines.append(_mesh_line(mesh))
    rejected = _mapping(status.get("rejected"))
    if rejected:
        counts = ", ".join(f"{k} {_text(v)}" for k, v in sorted(rejected.items()))
        lines.append(f"rejected packets: {counts}")
    return "\n".join(lines)


def _call_block(call: dict[str, Any]) -> str:
    lines = [
        f"call {_text(call.get('id'))}: {_text(call.get('state'))} with "
        f"{_text(call.get('peer_number'))} ({short_sid(call.get('peer_sid'))}), "
        f"{duration(call.get('duration_s'))}, codec {_codec(call.get('codec'))}"
    ]
    audio = _mapping(call.get("audio"))
    if audio:
        lines.append(
            f"  audio: loss {loss(audio)}  jitter {_number(audio.get('jitter_ms'))} ms  "
            f"delay {_number(audio.get('playout_delay_ms'))} ms"
        )
        lines.append(
            f"  frames sent {_text(audio.get('frames_sent'))}  received "
            f"{_text(audio.get('frames_received'))}  lost {_text(audio.get('lost'))}  "
            f"concealed {_text(audio.get('concealed'))}"
        )
    return "\n".join(lines)


def _mesh_line(mesh: dict[str, Any]) -> str:
    ready = "ready" if mesh.get("ready") else f"waiting: {_text(mesh.get('waiting_for'))}"
    address = mesh.get("address")
    return f"mesh   {_text(mesh.get('mode'))}, {ready}" + (f", {address}" if address else "")


def format_peers(result: Any) -> str:
    rows = [
        [short_sid(p.get("sid")), _text(p.get("address")), _ago(p.get("last_heard_s"))]
        for p in map(_mapping, _sequence(_mapping(result).get("peers")))
    ]
    return table(["SID", "ADDRESS", "HEARD"], rows)


def format_calls(result: Any) -> str:
    rows = [
        [
            _text(c.get("id")),
            _text(c.get("state")),
            _text(c.get("peer_number")),
            short_sid(c.get("peer_sid")),
            duration(c.get("duration_s")),
            loss(c.get("audio")),
        ]
        for c in map(_mapping, _sequence(_mapping(result).get("calls")))
    ]
    return table(["ID", "STATE", "NUMBER", "PEER", "TIME", "LOSS"], rows)


def format_mesh(result: Any) -> str:
    mesh = _mapping(result)
    lines = [_mesh_line(mesh)]
    for key in ("radio", "joins", "errors", "last_error", "warning", "last_heal", "heals"):
        if mesh.get(key) not in (None, "", [], {}):
            lines.append(f"{key.replace('_', ' ')}: {_text(mesh.get(key))}")
    for key in ("neighbours", "originators"):
        entries = [_mapping(e) for e in _sequence(mesh.get(key))]
        if entries:
            lines.append(f"{key}:")
            lines.append(_link_table(entries))
    return "\n".join(lines)


def _link_table(entries: list[dict[str, Any]]) -> str:
    """batman-adv's neighbours/originators: who, via which hop, link quality (TQ of 255)."""
    rows = [
        [
            _text(e.get("mac") or e.get("originator") or e.get("address")),
            _text(e.get("next_hop") or e.get("neighbour") or e.get("interface")),
            _tq(e.get("tq")),
            _ago(e.get("last_seen_s") if "last_seen_s" in e else e.get("last_seen")),
        ]
        for e in entries
    ]
    return table(["NODE", "VIA", "TQ", "SEEN"], rows)


def format_audio(result: Any) -> str:
    audio = _mapping(result)
    lines = [f"backend {_text(audio.get('backend'))}"]
    stats = _mapping(audio.get("stats"))
    if stats:
        lines.append(_pairs(stats))
    last = _mapping(audio.get("last_call"))
    if last:
        lines.append("last call:")
        lines.append(_pairs(last))
    return "\n".join(lines)


def format_keys(result: Any) -> str:
    keys = _mapping(result)
    pressed = " ".join(_text(k) for k in _sequence(keys.get("pressed"))) or "(none)"
    lines = [f"keypad {_text(keys.get('backend'))}", f"pressed: {pressed}"]
    if "hook" in keys:
        lines.append(f"hook: {_text(keys.get('hook'))}")
    return "\n".join(lines)


def format_log(result: Any, last: int | None = None) -> str:
    lines = [_text(line) for line in _sequence(_mapping(result).get("lines"))]
    if last is not None:
        lines = lines[-last:] if last else []
    return "\n".join(lines) or "(no log lines yet)"


def format_lookup(result: Any) -> str:
    lookup = _mapping(result)
    rows = [
        [_text(a.get("did")), _text(a.get("name")), short_sid(a.get("sid"))]
        for a in map(_mapping, _sequence(lookup.get("answers")))
    ]
    if not rows:
        return f"nobody answered for {_text(lookup.get('number'))}"
    return table(["NUMBER", "NAME", "SID"], rows)


def format_call_command(command: str, result: Any) -> str:
    """What dial, answer and hangup did."""
    done = _mapping(result)
    call = _text(done.get("call"))
    if command == "dial":
        return f"dialling {_text(done.get('number'))} (call {call})"
    if command == "answer":
        return f"answered call {call}"
    return f"hung up call {call}"


def format_test(result: Any) -> str:
    done = _mapping(result)
    rest = {k: v for k, v in done.items() if k != "what"}
    return f"test {_text(done.get('what'))}: " + (
        ", ".join(f"{k} {_text(v)}" for k, v in rest.items()) or "done"
    )


def printable(value: Any) -> str:
    """Any value as text safe for a terminal: control characters (escape sequences) become ?."""
    return _text(value)


def _pairs(values: dict[str, Any]) -> str:
    width = max(len(k) for k in values)
    return "\n".join(f"  {k.replace('_', ' '):<{width}}  {_text(v)}" for k, v in values.items())


def _ago(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "-"
    return f"{seconds:.1f} s ago" if seconds < 60 else f"{duration(seconds)} ago"


def _tq(tq: Any) -> str:
    """batman-adv's transmit quality, 0-255, with its share."""
    if not isinstance(tq, int):
        return "-"
    return f"{tq} ({100 * tq // 255} %)"


def _codec(codec: Any) -> str:
    return f"0x{codec:02x}" if isinstance(codec, int) else "-"


def _number(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return ", ".join(_text(v) for v in value) if isinstance(value, list) else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in str(value))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
