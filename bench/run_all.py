"""Run every bench/*_bench.py, echo its `name value unit` lines, collect them in results.txt.

Each benchmark is its own script (run as a subprocess, so one crashing does not hide the
others' figures), with the repository root on PYTHONPATH so it can import the test lab
(`lab/`) and the VM bench (`vmbench/`); any line of the form `name value unit` counts as a
figure. Add a figure by adding a `<topic>_bench.py` here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIGURE = re.compile(r"^[A-Za-z0-9_.]+ -?[0-9.eE+-]+ \S+$")


def main() -> int:
    figures: list[str] = []
    failed: list[str] = []
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    for script in sorted(HERE.glob("*_bench.py")):
        print(f"# {script.name}", file=sys.stderr, flush=True)
        proc = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            print(line, flush=True)
            if FIGURE.match(line):
                figures.append(line)
        if proc.wait() != 0:
            failed.append(script.name)
    (HERE / "results.txt").write_text("".join(f"{line}\n" for line in figures))
    if failed:
        print(f"# failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
