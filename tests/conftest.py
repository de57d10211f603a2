"""Suite-wide test settings.

Hypothesis: no per-example deadline and no "too slow" health check, because the suite shares two
cores with QEMU and real-time audio and a slow example is not a failure. Under CI the examples
are derandomized, so a run on `main` is repeatable; set HYPOTHESIS_PROFILE=explore locally for
fresh random examples.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore")
)
