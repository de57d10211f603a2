"""Call set-up time on the virtual bench: two `handset daemon`s on Debian's kernel (managed
mesh over hwsim radios, snd-aloop cards, gpio-sim keypads scanned through rpi-lgpio); keys
pressed on one, from its phone having the whole number (`#`) to the other's phone ringing.

Runs tests/vm/test_daemon_bench.py in the VM (one boot) and prints the figure it wrote,
`vm_call_setup_ms`. The guest runs under TCG (Python 7-16x slower than on the host), so this is
an upper bound; bench/call_setup_bench.py measures the same thing natively in namespaces.
Run: `make bench`, or as root `.venv/bin/python bench/vm_call_setup_bench.py` (image built).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmbench import inner_pytest, vm  # noqa: E402

TESTS = "tests/vm/test_daemon_bench.py"


def main() -> int:
    if os.geteuid() != 0 or vm.missing_host_tools():
        print(
            "# vm_call_setup_bench: needs root and the bench's host tools; skipped", file=sys.stderr
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="vm-call-setup-") as job:
        run = inner_pytest.run_pytest(
            REPO, ["-q", TESTS], job_dir=Path(job), timeout=900, log=lambda _msg: None
        )
        figures = Path(job, "figures.txt")
        lines = figures.read_text().splitlines() if figures.exists() else []
    for line in lines:
        print(line)
    failed = [node for node, r in run.results.items() if r["outcome"] != "passed"]
    for node in failed:
        print(f"# vm_call_setup_bench: {node} {run.results[node]['outcome']}", file=sys.stderr)
    return 1 if failed or not run.results else 0


if __name__ == "__main__":
    sys.exit(main())
