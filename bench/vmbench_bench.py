"""What the virtual bench costs: cached build check, VM boot, and the whole bench run.

Prints `name value unit` lines. Run: `make bench` (or, from the repository root,
`PYTHONPATH=. .venv/bin/python bench/vmbench_bench.py`), as root, with the image built
(`make vm-image`). The cold build is not repeated here (minutes, and it would evict the cache);
measure it with `time env VMBENCH_CACHE=$(mktemp -d) .venv/bin/python -m vmbench build`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vmbench import image, inner_pytest, vm

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    if os.geteuid() != 0 or vm.missing_host_tools():
        print("# vmbench_bench: needs root and the bench's host tools; skipped", file=sys.stderr)
        return 0
    quiet = lambda _msg: None  # noqa: E731
    image.build(REPO, log=quiet)  # make sure nothing is built inside the timings
    start = time.monotonic()
    img = image.build(REPO, log=quiet)
    print(f"vmbench_build_cached {time.monotonic() - start:.2f} s")

    boot = vm.run("true", img, REPO, timeout=300)
    print(f"vmbench_boot_to_command {boot.boot_seconds:.1f} s")
    print(f"vmbench_boot_run_poweroff {boot.total_seconds:.1f} s")

    start = time.monotonic()
    run = inner_pytest.run_pytest(REPO, ["-q", "tests/vm"], timeout=1800, log=quiet)
    elapsed = time.monotonic() - start
    passed = sum(1 for r in run.results.values() if r["outcome"] == "passed")
    print(f"vmbench_whole_bench_run {elapsed:.1f} s")
    print(f"vmbench_bench_tests_passed {passed} tests")
    print(f"vmbench_bench_tests_total {len(run.results)} tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
