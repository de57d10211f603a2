"""The sound-card edge: ALSA devices, the real-time audio engine, call-progress tones.

The call pipeline itself (codec, jitter buffer) is vomp.media's; the engine process runs it
during a call (engine_call.py), because it is awake every period anyway.

    devices.py      PcmSettings, the backend seam (alsa | fake) and its errors
    alsa_pcm.py     the real backend: pyalsaaudio, checked with info()
    fake_pcm.py     the scripted test backend
    device_loop.py  one period of full-duplex work: capture paces, playback follows
    counters.py     DeviceCounters, declared once, and the seqlocked shared page carrying them
    engine_process.py  the engine process: DeviceLoop at SCHED_FIFO on its pipes, its settings
    engine_call.py  EngineCall: the call's CallAudio run by the engine process, period by period
    call_records.py the records about a call on the pipes between handset and engine process
    engine.py       AudioEngine: starts the engine process and keeps it alive (reopens)
    realtime.py     SCHED_FIFO for the threads that must meet every period
    tones.py        dial, ring-back, busy, error, call-ended and DTMF keypad tones
"""
