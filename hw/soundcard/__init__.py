"""The sound-card edge: ALSA devices, the real-time audio engine, call-progress tones.

Kept apart from vomp.media (codec, jitter buffer, call pipeline) so the engine process starts
fast: it imports pyalsaaudio and nothing else heavy, which matters when a USB card comes back.

    devices.py      PcmSettings, the backend seam (alsa | fake) and its errors
    alsa_pcm.py     the real backend: pyalsaaudio, checked with info()
    fake_pcm.py     the scripted test backend
    device_loop.py  one period of full-duplex work: capture paces, playback follows
    counters.py     DeviceCounters, declared once, and the seqlocked shared page carrying them
    engine_process.py  the engine process: DeviceLoop alone at SCHED_FIFO, its settings
    engine.py       AudioEngine: starts the engine process and keeps it alive (reopens)
    realtime.py     SCHED_FIFO for the threads that must meet every period
    tones.py        dial, ring-back, busy, error, call-ended and DTMF keypad tones
"""
