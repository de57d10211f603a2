"""The SD image's first-boot reading of handset.toml ([diag], [system]) and the image's inputs."""

import base64
import re
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from firmware import config
from image import boot_test, firstboot, wheels

REPO = Path(__file__).resolve().parent.parent
KEY = boot_test.TEST_KEY


def test_the_cards_template_has_no_errors_and_no_keys():
    settings = firstboot.read_settings((REPO / "image" / "handset.toml").read_text())
    assert settings.errors == []
    assert settings.authorized_keys == []
    assert settings.hostname is None


def test_the_boot_tests_config_is_applied_whole():
    settings = firstboot.read_settings(boot_test.TEST_CONFIG)
    assert settings.errors == []
    assert settings.authorized_keys == [KEY]
    assert settings.hostname == boot_test.TEST_HOSTNAME
    assert settings.wifi_country == "DE"


def test_a_bad_key_is_named_by_file_line_and_the_good_ones_stay():
    text = (
        f'[handset]\nnumber = "5550100"\n\n[diag]\nauthorized_keys = ["{KEY}", "ssh-ed25519 A"]\n'
    )
    settings = firstboot.read_settings(text, Path("/boot/firmware/handset.toml"))
    assert settings.authorized_keys == [KEY]
    (error,) = settings.errors
    assert error.startswith("/boot/firmware/handset.toml:5: [diag] authorized_keys entry 2 ")
    assert "fix:" in error


def test_a_key_of_another_type_than_it_claims_is_refused():
    blob = KEY.split()[1]
    assert firstboot.key_problem(f"ssh-rsa {blob}") is not None
    assert firstboot.key_problem(f'command="sh" {KEY}') is not None
    assert firstboot.key_problem(KEY) is None


def test_bad_hostname_and_country_say_the_fix_and_the_rest_applies():
    text = (
        '[system]\nhostname = "Kim\'s phone"\nwifi_country = "de"\n[diag]\nauthorized_keys = []\n'
    )
    settings = firstboot.read_settings(text)
    assert settings.hostname is None and settings.wifi_country is None
    assert settings.authorized_keys == []
    assert [e.split(":")[1] for e in settings.errors] == ["2", "3"]


def test_broken_toml_keeps_the_installed_keys():
    settings = firstboot.read_settings('[diag]\nauthorized_keys = ["ssh-ed25519\n')
    assert settings.authorized_keys is None  # None: leave the last good boot's keys in place
    (error,) = settings.errors
    assert "TOML" in error


@given(st.text())
@example('[system]\nhostname = 3\n[diag]\nauthorized_keys = [1, "x", ["y"]]')
@example("system = 1\ndiag = []")
@example("[diag]\nauthorized_keys = 'ssh-ed25519'")
def test_reading_is_total(text):
    settings = firstboot.read_settings(text)
    assert all(isinstance(error, str) for error in settings.errors)
    for key in settings.authorized_keys or []:
        assert firstboot.key_problem(key) is None
        assert base64.b64decode(key.split()[1])


def test_every_python_package_on_the_image_is_pinned():
    pinned = {
        wheels.normalise(m.group(1))
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", (REPO / "constraints.txt").read_text(), re.M)
    }
    for name in wheels.image_requirements(REPO):
        assert wheels.normalise(name) in pinned, f"{name} is not pinned in constraints.txt"


def test_the_daemon_accepts_the_cards_template_and_the_boot_tests_config():
    card = Path("/boot/firmware/handset.toml")
    template = config.parse((REPO / "image" / "handset.toml").read_text(), card)
    assert template.mesh.mode == "ibss"
    booted = config.parse(boot_test.TEST_CONFIG, card)
    assert booted.mesh.mode == "unmanaged" and booted.audio.backend == "fake"
    assert booted.diag.authorized_keys == (KEY,)


def test_the_boot_tests_broken_config_breaks_what_it_means_to():
    card = Path("/boot/firmware/handset.toml")
    try:
        config.parse(boot_test.CONFIG_ERROR, card)
    except config.ConfigError as error:
        named = [
            p
            for p in error.problems
            if boot_test.CONFIG_ERROR_LINES[0].search(f"handset.service: {p}")
        ]
        assert named, error.problems
    else:
        raise AssertionError("the daemon accepted the broken config")
    settings = firstboot.read_settings(boot_test.CONFIG_ERROR, card)
    (problem,) = settings.errors
    assert boot_test.CONFIG_ERROR_LINES[1].search(f"handset-firstboot: error: {problem}")
    assert settings.authorized_keys == [KEY]
