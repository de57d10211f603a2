"""Build phases: each announces itself, reports its duration, and names itself when it fails."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PhaseFailed(RuntimeError):
    """A phase of the image build or boot test failed; the message says which phase and why."""


def log(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Run one named phase; a failure inside becomes PhaseFailed naming the phase."""
    log(f"{name} ...")
    start = time.monotonic()
    try:
        yield
    except PhaseFailed:
        raise
    except subprocess.CalledProcessError as err:
        raise PhaseFailed(
            f"phase '{name}' failed after {time.monotonic() - start:.1f} s: "
            f"{_command(err.cmd)} exited with status {err.returncode}"
        ) from err
    except (OSError, RuntimeError, ValueError) as err:
        raise PhaseFailed(
            f"phase '{name}' failed after {time.monotonic() - start:.1f} s: {err}"
        ) from err
    log(f"{name}: done in {time.monotonic() - start:.1f} s")


def run_logged(argv: list[str], logfile: Path, show: tuple[str, ...] = ()) -> None:
    """Run a long command with its whole output in `logfile`; lines starting with one of `show`
    are echoed with the elapsed time. On failure the log's tail is printed and the error raised."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            out.write(line)
            out.flush()
            if show and line.startswith(show):
                log(f"  {time.monotonic() - start:6.1f} s  {line.rstrip()}")
        returncode = proc.wait()
    if returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-25:]
        sys.stderr.write("\n".join(f"    | {line}" for line in tail) + "\n")
        log(f"whole output: {logfile}")
        raise subprocess.CalledProcessError(returncode, argv)


def quiet(argv: list[str], stdin: bytes | None = None, **kwargs) -> None:
    """Run a short command, showing its output only when it fails."""
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False, **kwargs)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace").splitlines()[-25:]
        sys.stderr.write("\n".join(f"    | {line}" for line in output) + "\n")
        raise subprocess.CalledProcessError(done.returncode, argv)


def _command(cmd: object) -> str:
    if isinstance(cmd, list | tuple):
        return " ".join(str(part) for part in cmd[:3]) + (" ..." if len(cmd) > 3 else "")
    return str(cmd)
