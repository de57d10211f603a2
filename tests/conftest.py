"""Suite-wide test settings.

Hypothesis explores: every run, CI included, draws fresh random examples from a new seed, which
the header of the run prints (and the summary repeats when something failed); rerun one with
`pytest --hypothesis-seed=N`. A failure found that way becomes an `@example` next to its
property, with the fix. No per-example deadline and no "too slow" health check: the suite shares
two cores with QEMU and real-time audio, and a slow example is not a failure.
HYPOTHESIS_PROFILE=deep runs 20 times as many examples, to hunt for failures locally.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "explore", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("deep", settings.get_profile("explore"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Choose the run's seed before Hypothesis's own plugin reads the option."""
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis seed {config.option.hypothesis_seed} (repeat: --hypothesis-seed=N)"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus != 0:
        seed = config.option.hypothesis_seed
        terminalreporter.write_line(f"hypothesis seed was {seed}: --hypothesis-seed={seed}")
