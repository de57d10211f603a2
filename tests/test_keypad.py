"""Keypad, hook switch, LED and ringer on the recording pin backend; the backend registry."""

from __future__ import annotations

import asyncio

import pytest

from hw.gpio import pin_factory
from hw.gpio.recording import RecordingOutputPin, RecordingPins, SimulatedMatrix
from hw.keypad import (
    LAYOUTS,
    Debouncer,
    HookChange,
    KeyMatrix,
    Keypad,
    KeyPress,
    scan_forever,
)
from hw.led import Led
from hw.ringer import GpioRinger, Ringer
from vomp.phone import Dial, Phone

ROWS, COLUMNS, HOOK, RINGER, LED = [5, 6, 13, 19], [12, 16, 20, 21], 26, 17, 27


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bench(layout="4x4"):
    clock = Clock()
    pins = RecordingPins(clock)
    columns = COLUMNS[: len(LAYOUTS[layout][0])]
    keypad = Keypad(pins, ROWS, columns, layout, hook=HOOK)
    matrix = SimulatedMatrix(pins, ROWS, columns, list(LAYOUTS[layout]))
    return clock, pins, keypad, matrix


def run_scans(clock, keypad, seconds, every=0.01):
    found = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now = round(clock.now + every, 6)
        found += keypad.feed(keypad.scan(), clock.now)
    return found


def test_debouncer_ignores_glitches_and_believes_a_held_level():
    d = Debouncer(False, hold_s=0.03)
    assert d.feed(True, 0.00) is None
    assert d.feed(False, 0.01) is None  # a glitch
    assert d.feed(True, 0.02) is None
    assert d.feed(True, 0.04) is None
    assert d.feed(True, 0.05) is True
    assert d.level is True


def test_key_matrix_gives_one_press_per_hold_and_no_repeat():
    m = KeyMatrix("4x3", debounce_s=0.03)
    presses = []
    for i in range(100):  # held for a second
        presses += m.feed(frozenset("5"), i * 0.01)
    assert presses == [KeyPress("5", 0.03)]
    for i in range(100, 105):
        presses += m.feed(frozenset(), i * 0.01)
    for i in range(105, 110):
        presses += m.feed(frozenset("5"), i * 0.01)
    assert [p.key for p in presses] == ["5", "5"]


def test_key_matrix_ignores_bounces_and_ghosting_scans():
    m = KeyMatrix("4x4", debounce_s=0.03)
    bouncing = ["1", "", "1", "", "1", "1", "1", "1", "1"]
    presses = [p for i, held in enumerate(bouncing) for p in m.feed(frozenset(held), i * 0.01)]
    assert [p.key for p in presses] == ["1"]
    assert m.feed(frozenset("1235"), 1.0) == [] and m.skipped_scans == 1
    with pytest.raises(ValueError, match="layout '5x5'"):
        KeyMatrix("5x5")


def test_scanning_the_recording_matrix_finds_the_held_key():
    _clock, pins, keypad, matrix = bench()
    assert keypad.scan() == frozenset()
    matrix.press("6")
    matrix.press("*")
    assert keypad.scan() == frozenset({"6", "*"})
    matrix.release("6")
    assert keypad.scan() == frozenset({"*"})
    # every row was driven low once per scan and is left high
    for number in ROWS:
        row = pins.pins[number]
        assert isinstance(row, RecordingOutputPin)
        assert row.level is True
        assert [level for _t, level in row.history] == [True] + [False, True] * 3


def test_keypad_reports_presses_and_hook_changes_with_their_times():
    clock, pins, keypad, matrix = bench()
    hook = pins.pins[HOOK]
    assert run_scans(clock, keypad, 0.1) == []  # on the cradle: the contact is open
    hook.drive_low()  # lifted: the contact closes to ground
    found = run_scans(clock, keypad, 0.1)
    assert found == [HookChange(True, 0.14)]  # first read high at 0.11, held 30 ms
    matrix.press("#")
    found = run_scans(clock, keypad, 0.1)
    matrix.release("#")
    found += run_scans(clock, keypad, 0.1)
    assert found == [KeyPress("#", 0.24)]


def test_a_4x3_keypad_needs_3_columns():
    pins = RecordingPins()
    with pytest.raises(ValueError, match="layout 4x3 needs 4 rows and 3 columns"):
        Keypad(pins, ROWS, COLUMNS, "4x3")


def test_a_hook_switch_alone_needs_no_matrix():
    clock = Clock()
    pins = RecordingPins(clock)
    keypad = Keypad(pins, [], [], "4x3", hook=HOOK)
    assert keypad.scan() == frozenset()
    pins.pins[HOOK].drive_low()
    assert run_scans(clock, keypad, 0.1)[0] == HookChange(True, 0.04)


def test_a_pin_is_set_up_once():
    pins = RecordingPins()
    pins.output(5)
    with pytest.raises(ValueError, match="GPIO 5 is already in use"):
        pins.input(5)


def test_keys_and_hook_through_the_recording_backend_drive_the_phone():
    clock, pins, keypad, matrix = bench()
    phone = Phone()
    run_scans(clock, keypad, 0.1)
    pins.pins[HOOK].drive_low()
    for item in run_scans(clock, keypad, 0.1):
        assert isinstance(item, HookChange)
        phone.hook(item.lifted, item.at)
    for key in "5552002#":
        matrix.press(key)
        pressed = run_scans(clock, keypad, 0.06)
        matrix.release(key)
        pressed += run_scans(clock, keypad, 0.06)
        for item in pressed:
            assert isinstance(item, KeyPress)
            phone.key(item.key, item.at)
    actions = []
    while (action := phone.next_action()) is not None:
        actions.append(action)
    assert Dial("5552002") in actions


def test_scan_forever_delivers_a_held_key_once():
    _clock, _pins, keypad, matrix = bench("4x3")
    delivered: list = []

    async def main():
        task = asyncio.create_task(scan_forever(keypad, delivered.append, interval_s=0.002))
        matrix.press("0")
        for _ in range(500):  # at most ~5 s on a loaded machine; usually 0.05 s
            await asyncio.sleep(0.01)
            if delivered:
                break
        await asyncio.sleep(0.05)  # held on: still one press
        task.cancel()

    asyncio.run(main())
    assert [d.key for d in delivered] == ["0"]


def test_led_blinks_on_its_pin():
    clock = Clock()
    pins = RecordingPins(clock)
    pin = pins.output(LED)
    led = Led(pin)
    assert led.set_pattern("blink", 10.0) == 10.5
    clock.now = 10.5
    assert led.update(10.5) == 11.0
    clock.now = 11.0
    led.update(11.0)
    assert led.set_pattern("on", 11.2) is None
    assert [(t, level) for t, level in pin.history] == [
        (0.0, False),
        (0.0, True),
        (10.5, False),
        (11.0, True),
    ]
    led.set_pattern("off", 12.0)
    assert pin.level is False
    with pytest.raises(ValueError, match="LED pattern"):
        led.set_pattern("disco", 0)


def test_ringer_rings_a_gpio_pin_with_the_cadence():
    clock = Clock()
    pins = RecordingPins(clock)
    ringer = Ringer([GpioRinger(pins.output(RINGER))])
    ringer.start(0.0)
    clock.now = 2.0
    ringer.update(2.0)
    clock.now = 6.0
    ringer.update(6.0)
    clock.now = 7.0
    ringer.stop()
    assert pins.pins[RINGER].history == [(0.0, False), (0.0, True), (2.0, False), (6.0, True),
                                        (7.0, False)]  # fmt: skip


def test_pin_backends_are_chosen_by_name(monkeypatch):
    monkeypatch.delenv("HANDSET_PINS", raising=False)
    assert isinstance(pin_factory(), RecordingPins)
    monkeypatch.setenv("HANDSET_PINS", "recording")
    assert isinstance(pin_factory(), RecordingPins)
    with pytest.raises(ValueError, match=r"unknown pins backend 'pigpio'.*one of recording, rpi"):
        pin_factory("pigpio")
