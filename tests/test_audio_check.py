"""`handset audio-check`: a sound card brought up as a call would, reported as JSON."""

from __future__ import annotations

import json

from firmware.cli import main


def test_audio_check_on_a_silent_fake_card_reports_a_running_engine(capsys):
    assert main(["audio-check", "--backend", "fake", "--seconds", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device_state"] == "running"
    assert report["device_periods"] > 0 and report["device_xruns"] == 0


def test_audio_check_on_a_missing_card_fails_and_names_it(capsys, monkeypatch):
    monkeypatch.setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    assert (
        main(
            [
                "audio-check",
                "--capture",
                "nosuchcard",
                "--playback",
                "nosuchcard",
                "--seconds",
                "0.5",
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert report["device_state"] == "reopening"
    assert "nosuchcard" in report["device_error"]
