"""A pytest plugin the guest loads (`-p vmbench.results_plugin`): it writes each test's outcome
to $VMBENCH_RESULTS as JSON, keyed by node id, so the host can report them one by one."""

from __future__ import annotations

import json
import os

_results: dict[str, dict] = {}


def pytest_runtest_logreport(report):
    entry = _results.setdefault(
        report.nodeid, {"outcome": "passed", "duration": 0.0, "longrepr": "", "sections": ""}
    )
    entry["duration"] += report.duration
    failed_setup_or_call = report.failed or (report.skipped and report.when != "teardown")
    if failed_setup_or_call and entry["outcome"] == "passed":
        entry["outcome"] = "failed" if report.failed else "skipped"
        entry["when"] = report.when
        if report.skipped and isinstance(report.longrepr, tuple):
            entry["longrepr"] = report.longrepr[2]  # the skip reason
        else:
            entry["longrepr"] = report.longreprtext
        entry["sections"] = "\n".join(f"--- {name} ---\n{text}" for name, text in report.sections)
    elif report.failed and report.when == "teardown":
        entry["outcome"] = "failed"
        entry["when"] = "teardown"
        entry["longrepr"] += "\n" + report.longreprtext
    _write()


def pytest_sessionfinish(session, exitstatus):
    _write()


def _write() -> None:
    path = os.environ.get("VMBENCH_RESULTS")
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(_results, f, indent=1)
        os.replace(tmp, path)
