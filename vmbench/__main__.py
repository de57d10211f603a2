"""`python -m vmbench build | run CMD... | pytest ARGS...` -- see vmbench/README.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vmbench import image, inner_pytest, vm

REPO = Path(__file__).resolve().parent.parent


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmbench", description=__doc__)
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="shared as /src (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("build", help="build (or find in the cache) kernel, initramfs and root image")
    run_p = sub.add_parser("run", help="boot, run a shell command in /src, print its output")
    run_p.add_argument("command", nargs=argparse.REMAINDER)
    py_p = sub.add_parser("pytest", help="boot and run pytest with these arguments in the guest")
    py_p.add_argument("args", nargs=argparse.REMAINDER)
    for p in (run_p, py_p):
        p.add_argument("--job-dir", type=Path, help="host dir shared as /job (default: a temp dir)")
        p.add_argument("--timeout", type=float, default=900)
        p.add_argument("--quiet", action="store_true", help="do not stream the console")
        p.add_argument("--init", choices=vm.INITS, default="shell", help="PID 1 in the guest")
    args = parser.parse_args(argv)

    start = time.monotonic()
    if args.what == "build":
        img = image.build(args.repo, log=_log)
        for name, value in vars(img).items():
            print(f"{name} {value}")
        print(f"vmbench_build_seconds {time.monotonic() - start:.1f} s")
        return 0
    if args.what == "run":
        img = image.build(args.repo, log=_log)
        command = " ".join(a for a in args.command if a != "--")
        result = vm.run(
            command, img, args.repo, args.job_dir, args.timeout, echo=not args.quiet, init=args.init
        )
    else:
        inner = inner_pytest.run_pytest(
            args.repo,
            [a for a in args.args if a != "--"],
            args.job_dir,
            args.timeout,
            echo=not args.quiet,
            log=_log,
            init=args.init,
        )
        result = inner.vm
    if args.quiet:
        sys.stdout.write(result.output)
    if result.returncode < 0:
        sys.stderr.write(result.console[-4000:])
    print(
        f"vmbench: rc={result.returncode} boot={result.boot_seconds:.1f}s "
        f"total={result.total_seconds:.1f}s job={result.job_dir}",
        file=sys.stderr,
    )
    return result.returncode if result.returncode >= 0 else 125


if __name__ == "__main__":
    sys.exit(main())
