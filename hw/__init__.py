"""Hardware edges: audio (ALSA, Opus), mesh (pyroute2), keypad (GPIO)."""
