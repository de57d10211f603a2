"""The control results as a person reads them: one-line status, durations, loss, tables; and
total on anything a daemon could answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from firmware import status_view as view

IDLE = {"state": "idle", "number": "5551234", "sid": "AB" * 32, "peers": 3, "mesh": {"ready": True}}
IN_CALL = {
    **IDLE,
    "state": "in call",
    "call": {
        "id": 7,
        "state": "INCALL",
        "peer_number": "5559876",
        "peer_sid": "CD" * 32,
        "duration_s": 125.4,
        "codec": 0x0D,
        "audio": {"frames_sent": 100, "frames_received": 196, "lost": 4, "concealed": 4,
                  "jitter_ms": 3.25, "playout_delay_ms": 40.0},
    },
}  # fmt: skip


def test_one_line_says_idle_with_peers_or_the_call_with_its_loss():
    assert view.one_line(IDLE) == "idle, 3 peers"
    assert view.one_line({**IDLE, "peers": 1}) == "idle, 1 peer"
    assert view.one_line(IN_CALL) == "in call with 5559876, 2 % loss"
    ringing = {**IN_CALL, "state": "ringing"}
    assert view.one_line(ringing) == "ringing: 5559876 calling"
    waiting = {**IDLE, "mesh": {"ready": False, "waiting_for": "radio wlan0"}}
    assert view.one_line(waiting) == "waiting for the mesh: radio wlan0"


def test_loss_is_the_share_of_the_far_ends_frames_lost():
    assert view.loss({"frames_received": 0, "lost": 0}) == "0 %"
    assert view.loss({"frames_received": 995, "lost": 5}) == "0.5 %"
    assert view.loss({"frames_received": 50, "lost": 50}) == "50 %"
    assert view.loss(None) == "- %"


def test_durations_read_like_a_phone_display():
    assert [view.duration(s) for s in (0, 42.9, 125, 7380, -1, None, float("nan"))] == [
        "0 s", "42 s", "2 min 05 s", "2 h 03 min", "-", "-", "-",
    ]  # fmt: skip


def test_status_shows_the_call_and_its_audio():
    text = view.format_status(IN_CALL)
    assert "call 7: INCALL with 5559876 (CDCDCDCDCDCDCDCD*), 2 min 05 s, codec 0x0d" in text
    assert "loss 2 %" in text and "jitter 3.2 ms" in text


def test_tables_line_up_and_say_none_when_empty():
    peers = {"peers": [{"sid": "AB" * 32, "address": "10.0.0.2:4110", "last_heard_s": 1.25}]}
    assert view.format_peers(peers).splitlines() == [
        "SID                ADDRESS        HEARD",
        "ABABABABABABABAB*  10.0.0.2:4110  1.2 s ago",
    ]
    assert view.format_peers({"peers": []}) == "(none)"
    mesh = {"mode": "managed", "ready": True, "address": "10.1.2.3",
            "originators": [{"originator": "02:00:00:00:00:01", "next_hop": "02:00:00:00:00:02",
                             "tq": 255, "last_seen_s": 0.5}]}  # fmt: skip
    assert "02:00:00:00:00:01  02:00:00:00:00:02  255 (100 %)  0.5 s ago" in view.format_mesh(mesh)


def test_a_peer_name_cannot_send_escape_sequences_to_the_terminal():
    text = view.format_lookup({"answers": [{"did": "5551234", "name": "\x1b[2JKim", "sid": "AB"}]})
    assert "\x1b" not in text and "?[2JKim" in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
result_like = st.dictionaries(
    st.sampled_from(["state", "call", "peers", "mesh", "audio", "lines", "answers", "calls",
                     "stats", "originators", "neighbours", "pressed", "number", "sid"]),
    json_values,
)  # fmt: skip


call_like = st.fixed_dictionaries(
    {"state": json_values, "peers": json_values, "mesh": json_values},
    optional={"call": st.dictionaries(
        st.sampled_from(["id", "state", "peer_number", "peer_sid", "duration_s", "codec", "audio"]),
        json_values | st.fixed_dictionaries({}, optional={
            k: json_values for k in ("frames_received", "lost", "jitter_ms", "playout_delay_ms")
        }),
    )},
)  # fmt: skip


@given(result_like | call_like)
def test_every_formatter_is_total_on_anything_a_daemon_could_answer(result):
    for format_ in (
        view.one_line, view.format_status, view.format_peers, view.format_calls,
        view.format_mesh, view.format_audio, view.format_keys, view.format_log,
        view.format_lookup, view.format_test,
    ):  # fmt: skip
        assert isinstance(format_(result), str)
    assert isinstance(view.format_call_command("dial", result), str)
