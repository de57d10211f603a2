"""Run pytest inside the VM on some node ids and bring each test's outcome back."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vmbench import image as image_mod
from vmbench import vm

GUEST_PYTEST = "/opt/venv/bin/python -m pytest"
HANG_REPORT_SECONDS = 300


@dataclass
class InnerRun:
    vm: vm.VmResult
    results: dict[str, dict] = field(default_factory=dict)  # node id -> outcome, longrepr, ...


def run_pytest(
    repo: Path,
    args: list[str],
    job_dir: Path | None = None,
    timeout: float = 900,
    echo: bool = False,
    log=print,
    init: str = "shell",
) -> InnerRun:
    """`pytest ARGS` in the guest's /src (the repository), one boot with `init` as PID 1."""
    img = image_mod.build(repo, log=log)
    if job_dir is not None:  # a reused job dir must not show a previous run's results
        for stale in ("results.json", "junit.xml", "figures.txt"):
            (Path(job_dir) / stale).unlink(missing_ok=True)
    command = (
        "VMBENCH_RESULTS=/job/results.json "
        f"{GUEST_PYTEST} -p vmbench.results_plugin -p no:cacheprovider "
        # a test stuck for minutes prints every thread's stack, so a hang can be read
        f"-o faulthandler_timeout={HANG_REPORT_SECONDS} "
        f"--junitxml=/job/junit.xml {' '.join(shlex.quote(a) for a in args)}"
    )
    result = vm.run(command, img, repo, job_dir=job_dir, timeout=timeout, echo=echo, init=init)
    results_file = result.job_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    return InnerRun(vm=result, results=results)


def print_figures(repo: Path, tests: str, bench_name: str, timeout: float = 900) -> int:
    """A bench's main: run `tests` in one boot, print the figures they wrote, 1 if any failed.

    The VM tests write `name value unit` lines to /job/figures.txt; a bench prints them as its
    own. Without root or the host tools it says why on stderr and prints nothing.
    """
    if os.geteuid() != 0 or vm.missing_host_tools():
        print(f"# {bench_name}: needs root and the bench's host tools; skipped", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix=f"{bench_name}-") as job:
        run = run_pytest(
            repo, ["-q", tests], job_dir=Path(job), timeout=timeout, log=lambda _: None
        )
        figures = Path(job, "figures.txt")
        lines = figures.read_text().splitlines() if figures.exists() else []
    for line in lines:
        print(line)
    failed = [node for node, r in run.results.items() if r["outcome"] != "passed"]
    for node in failed:
        result = run.results[node]
        print(f"# {bench_name}: {node} {result['outcome']}", file=sys.stderr)
        print(str(result.get("longrepr", ""))[-3000:], file=sys.stderr)
    if not run.results:
        print(
            f"# {bench_name}: no results; guest output:\n{run.vm.output[-3000:]}", file=sys.stderr
        )
    return 1 if failed or not run.results else 0
