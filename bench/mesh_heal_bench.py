"""How fast the mesh heals, measured in the virtual bench (Debian's kernel, hwsim radios).

Runs tests/vm/test_mesh_heal.py in the VM (one boot) and prints the figures its tests wrote:
`mesh_heal_radio_reset_ms_p50`/`_max` (an end node's radio reset ten times in a 3-node line:
re-join to audio flowing both ways again), `mesh_heal_relay_loss_ms` (a 4-node diamond loses the
relay carrying the call: relay gone to audio both ways again), the middle node's reboot, the
partition merge with a duplicate address, and the call's longest audio gap in each case
(`*_audio_gap_ms*`). Also what `iw station dump` says about the rates hwsim used.
Run: `make bench`, or as root `.venv/bin/python bench/mesh_heal_bench.py` (image built).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmbench import inner_pytest, vm  # noqa: E402

TESTS = "tests/vm/test_mesh_heal.py"


def main() -> int:
    if os.geteuid() != 0 or vm.missing_host_tools():
        print("# mesh_heal_bench: needs root and the bench's host tools; skipped", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="mesh-heal-bench-") as job:
        run = inner_pytest.run_pytest(
            REPO, ["-q", TESTS], job_dir=Path(job), timeout=1200, log=lambda _msg: None
        )
        figures = Path(job, "figures.txt")
        lines = figures.read_text().splitlines() if figures.exists() else []
    for line in lines:
        print(line)
    failed = [node for node, r in run.results.items() if r["outcome"] != "passed"]
    for node in failed:
        result = run.results[node]
        print(f"# mesh_heal_bench: {node} {result['outcome']}", file=sys.stderr)
        print(result["longrepr"][-3000:], file=sys.stderr)
    if not run.results:
        print(f"# mesh_heal_bench: no results; guest output:\n{run.vm.output[-3000:]}")
    return 1 if failed or not run.results else 0


if __name__ == "__main__":
    sys.exit(main())
