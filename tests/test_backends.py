"""One backend mechanism for every hardware kind: config name, else environment, else default."""

from __future__ import annotations

import pytest

from hw.backends import AUDIO, KINDS, MESH, UnknownBackend
from hw.mesh import MeshConfig, make_backend
from hw.mesh.fake import FakeMeshBackend
from hw.soundcard.devices import load_backend
from hw.soundcard.fake_pcm import FakeBackend
from hw.soundcard.file_pcm import FileBackend


def test_the_config_wins_over_the_environment_which_wins_over_the_default(monkeypatch):
    monkeypatch.delenv("HANDSET_AUDIO_BACKEND", raising=False)
    assert AUDIO.choose() == "alsa"
    monkeypatch.setenv("HANDSET_AUDIO_BACKEND", "fake")
    assert AUDIO.choose() == "fake"
    assert AUDIO.choose("file") == "file"


def test_an_unknown_name_says_where_it_came_from_and_the_choices(monkeypatch):
    with pytest.raises(UnknownBackend, match=r"'pulse' \(from the config\); choose one of alsa"):
        AUDIO.choose("pulse")
    monkeypatch.setenv("HANDSET_MESH_BACKEND", "nm")
    with pytest.raises(UnknownBackend, match=r"\(from \$HANDSET_MESH_BACKEND\)"):
        MESH.choose()


def test_every_kind_has_a_real_and_a_test_backend_that_import():
    assert set(KINDS) >= {"audio", "mesh"}
    for kind in KINDS.values():
        assert len(kind.backends) >= 2
        for name in kind.backends:
            if name in ("alsa", "pyroute2", "rpi-gpio"):
                continue  # real hardware libraries: importing them is the hardware tests' job
            assert callable(kind.load(name))


def test_audio_and_mesh_are_built_through_the_one_mechanism(monkeypatch):
    monkeypatch.setenv("HANDSET_MESH_BACKEND", "fake")
    assert isinstance(make_backend(MeshConfig()), FakeMeshBackend)
    assert isinstance(load_backend("file"), FileBackend)
    monkeypatch.setenv("HANDSET_AUDIO_BACKEND", "fake")
    assert isinstance(load_backend(), FakeBackend)
