"""Bench tests: collected on the host, run inside the QEMU VM, reported back one by one.

On the host, every selected test under tests/vm/ is replaced by a stand-in that carries its node
id. The first stand-in to run boots the VM once and runs all selected tests there
(`python -m vmbench pytest <node ids>`); each stand-in then reports its own test's outcome, with the
guest's traceback on failure. So `pytest tests/vm -k radio` runs only those tests in the VM.

In the guest (VMBENCH_GUEST=1) the tests run for real, with the fixtures below.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vmbench.guest import Bench, in_guest

_INNER_RUN = pytest.StashKey()
_VM_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------- guest side: fixtures


@pytest.fixture
def bench():
    """Make nodes with `bench.nodes(3, topology="line", audio=True, gpio_lines=8)`; everything is
    torn down (namespaces deleted, modules unloaded) after the test."""
    if not in_guest():
        pytest.skip("bench fixtures exist only inside the VM")
    b = Bench()
    yield b
    b.close()


@pytest.fixture
def line3(bench):
    """Three nodes in a line: node0 and node2 can only reach each other through node1."""
    return bench.nodes(3, topology="line")


# ---------------------------------------------------------------- host side: stand-ins


class VmTestFailed(Exception):
    """The test failed in the VM; the message is the guest's report."""


class VmTest(pytest.Item):
    """Host stand-in for one test that runs in the VM."""

    line: int = 0  # the test function's line, for reports (a skip mark needs one)

    def runtest(self) -> None:
        inner = _inner_run(self.session, _init_of(self))
        entry = inner.results.get(self.nodeid)
        if entry is None:
            raise VmTestFailed(
                f"no result from the VM for {self.nodeid} (guest rc={inner.vm.returncode}).\n"
                f"Guest output (tail):\n{inner.vm.output[-6000:]}\n"
                f"Console (tail):\n{inner.vm.console[-3000:]}"
            )
        if entry["outcome"] == "skipped":
            pytest.skip(f"in the VM: {entry['longrepr']}")
        if entry["outcome"] == "failed":
            raise VmTestFailed(
                f"failed in the VM ({entry.get('when', 'call')}):\n{entry['longrepr']}\n"
                f"{entry['sections']}"
            )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, VmTestFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, self.line, f"[vm] {self.nodeid}"


def _init_of(item: pytest.Item) -> str:
    """What the test's boot runs as PID 1: systemd for tests marked `vm_systemd`, else a shell."""
    return "systemd" if item.get_closest_marker("vm_systemd") else "shell"


def _inner_run(session: pytest.Session, init: str):
    """The boot that ran this kind of test: one per kind (PID 1 shell or systemd) per session."""
    runs = session.config.stash.setdefault(_INNER_RUN, {})
    if init not in runs:
        from vmbench import inner_pytest

        nodeids = [
            item.nodeid
            for item in session.items
            if isinstance(item, VmTest) and _init_of(item) == init
        ]
        name = "vmbench-job" if init == "shell" else f"vmbench-job-{init}"
        job = Path(session.config.rootpath) / "build" / name
        timeout = float(os.environ.get("VMBENCH_TIMEOUT", "900"))
        start = time.monotonic()
        runs[init] = inner_pytest.run_pytest(
            session.config.rootpath,
            nodeids,
            job_dir=job,
            timeout=timeout,
            echo=os.environ.get("VMBENCH_ECHO") == "1",
            log=_print,
            init=init,
        )
        runs[init].host_seconds = time.monotonic() - start
    return runs[init]


def _print(msg: str) -> None:
    print(msg, flush=True)


def _skip_reason() -> str | None:
    from vmbench.vm import missing_host_tools

    if os.geteuid() != 0:
        return "the VM bench needs root (apt-get download, mmdebstrap, mkfs.ext4 -d)"
    missing = missing_host_tools()
    if missing:
        return f"host lacks {', '.join(missing)} (tools/apt-test-packages.txt installs them)"
    return None


def pytest_itemcollected(item):
    """Every bench test carries the `vm` mark, so `pytest -m "not vm"` leaves the VM out."""
    if _VM_DIR in Path(item.path).parents:
        item.add_marker("vm")


if not in_guest():

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(session, config, items):
        skip_reason = None
        for index, item in enumerate(items):
            if _VM_DIR not in Path(item.path).parents or isinstance(item, VmTest):
                continue
            if skip_reason is None:
                skip_reason = _skip_reason() or ""
            stand_in = VmTest.from_parent(item.parent, name=item.name)
            stand_in.line = item.reportinfo()[1] or 0
            stand_in.own_markers.extend(item.own_markers)
            stand_in.keywords.update(item.keywords)
            if skip_reason:
                stand_in.add_marker(pytest.mark.skip(reason=skip_reason))
            items[index] = stand_in

    def pytest_terminal_summary(terminalreporter, exitstatus, config):
        for init, inner in config.stash.get(_INNER_RUN, {}).items():
            terminalreporter.write_line(
                f"vmbench ({init} as PID 1): {len(inner.results)} tests ran in the VM; guest rc "
                f"{inner.vm.returncode}, boot {inner.vm.boot_seconds:.1f} s, "
                f"VM total {inner.vm.total_seconds:.1f} s, with build check "
                f"{inner.host_seconds:.1f} s; files in {inner.vm.job_dir}"
            )
