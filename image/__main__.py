"""`python -m image build [--no-compress] | test [--when-able]` -- see image/README.md."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from image import assemble, base, boot_test, progress

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image", description=__doc__)
    parser.add_argument("--repo", type=Path, default=REPO, help="default: %(default)s")
    sub = parser.add_subparsers(dest="what", required=True)
    build_p = sub.add_parser("build", help="build build/handset-VERSION-arm64.img (cached)")
    build_p.add_argument("--no-compress", action="store_true", help="skip the .zst copy")
    test_p = sub.add_parser("test", help="build or find the image, boot it under QEMU, check it")
    test_p.add_argument(
        "--when-able",
        action="store_true",
        help="skip (exit 0, saying why) when not root, the host lacks QEMU/binfmt, or the"
        " image's Debian base is not built yet (`make image` builds it once)",
    )
    test_p.add_argument("--timeout", type=float, default=900, help="seconds for the boot checks")
    test_p.add_argument(
        "--config-error",
        action="store_true",
        help="boot with a broken handset.toml instead: the system must stay diagnosable",
    )
    args = parser.parse_args(argv)

    if args.what == "test" and args.when_able:
        reason = _unable_reason(args.repo)
        if reason:
            progress.log(f"image boot test skipped: {reason}")
            return 0
    start = time.monotonic()
    try:
        if os.geteuid() != 0:
            raise progress.PhaseFailed("building the image needs root (mmdebstrap, chroot)")
        if args.what == "build":
            built = assemble.build(args.repo, compress=not args.no_compress)
            for path in (built.image, built.compressed):
                if path is not None:
                    print(f"{path} {path.stat().st_size / 1e6:.0f} MB")
        else:
            result = boot_test.run(args.repo, args.timeout, args.config_error)
            for name, seconds in result.milestones.items():
                print(f"image_boot_{name}_seconds {seconds:.1f} s")
    except progress.PhaseFailed as failure:
        progress.log(f"FAILED: {failure}")
        return 1
    print(f"image_{args.what}_seconds {time.monotonic() - start:.1f} s")
    return 0


def _unable_reason(repo: Path) -> str | None:
    if os.geteuid() != 0:
        return "not root (mmdebstrap and chroot need it)"
    if not (base.cache_dir() / f"pi-base-{base.build_key(repo)}").is_dir():
        return (
            "the image's Debian base is not in the cache (a cold build takes 10-20 min);"
            " `make image` builds it, then `make test` boot-tests the image"
        )
    missing = sorted(set(assemble.missing_host_tools() + boot_test.missing_host_tools()))
    if missing:
        return f"missing host tools: {', '.join(missing)}"
    if shutil.which("arch-test") and os.system("arch-test arm64 >/dev/null 2>&1") != 0:
        try:
            assemble.enable_binfmt()
        except (OSError, RuntimeError) as err:
            return f"cannot run arm64 programs through qemu-user binfmt: {err}"
    return None


if __name__ == "__main__":
    sys.exit(main())
