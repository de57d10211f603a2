"""How fast the mesh heals, measured in the virtual bench (Debian's kernel, hwsim radios).

Runs tests/vm/test_mesh_heal.py in the VM (one boot) and prints the figures its tests wrote:
`mesh_heal_radio_reset_ms_p50`/`_max` (an end node's radio reset ten times in a 3-node line:
re-join to audio flowing both ways again), `mesh_heal_relay_loss_ms` (a 4-node diamond loses the
relay carrying the call: relay gone to audio both ways again), the middle node's reboot, the
partition merge with a duplicate address, and the call's longest audio gap in each case
(`*_audio_gap_ms*`). Also what `iw station dump` says about the rates hwsim used.
Run: `make bench`, or as root `PYTHONPATH=. .venv/bin/python bench/mesh_heal_bench.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vmbench import inner_pytest

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    return inner_pytest.print_figures(
        REPO, "tests/vm/test_mesh_heal.py", "mesh_heal_bench", timeout=1200
    )


if __name__ == "__main__":
    sys.exit(main())
