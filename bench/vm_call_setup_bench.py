"""Call set-up time on the virtual bench: two `handset daemon`s on Debian's kernel (managed
mesh over hwsim radios, snd-aloop cards, gpio-sim keypads scanned through rpi-lgpio); keys
pressed on one, from its phone having the whole number (`#`) to the other's phone ringing.

Runs tests/vm/test_daemon_bench.py in the VM (one boot) and prints the figure it wrote,
`vm_call_setup_ms`. The guest runs under TCG (Python 7-16x slower than on the host), so this is
an upper bound; bench/call_setup_bench.py measures the same thing natively in namespaces.
Run: `make bench`, or as root `PYTHONPATH=. .venv/bin/python bench/vm_call_setup_bench.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vmbench import inner_pytest

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    return inner_pytest.print_figures(
        REPO, "tests/vm/test_daemon_bench.py", "vm_call_setup_bench", timeout=900
    )


if __name__ == "__main__":
    sys.exit(main())
