"""Audio edge: sound-card I/O (ALSA), codec, redundancy, jitter buffer, call-progress tones."""
