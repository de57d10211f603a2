"""The sound-card edge: ALSA devices, the real-time audio engine, call-progress tones.

Kept apart from vomp.media (codec, jitter buffer, call pipeline) so the engine process starts
fast: it imports pyalsaaudio and nothing else heavy, which matters when a USB card comes back.

    devices.py      PcmSettings, the backend seam (alsa | fake) and its errors
    alsa_pcm.py     the real backend: pyalsaaudio, checked with info()
    fake_pcm.py     the scripted test backend
    device_loop.py  one period of full-duplex work: capture paces, playback follows
    engine.py       AudioEngine: DeviceLoop in a supervised SCHED_FIFO process
    tones.py        dial, ring-back, busy, error, call-ended and DTMF keypad tones
"""
