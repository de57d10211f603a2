"""The bench's build steps that can be checked on the host, fast: the cache never trusts a
half-built stage, the kernel is found inside vmlinuz, boot modules load in dependency order,
and the guest gets the project's own Python dependencies."""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest

from vmbench import cache, initramfs, kernel, rootfs


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VMBENCH_CACHE", str(tmp_path))
    return tmp_path


def test_stage_is_built_once_and_then_found(cache_dir):
    builds = []

    def build(d: Path) -> None:
        builds.append(d)
        (d / "artifact").write_text("x")

    first = cache.stage("thing", "k1", build, log=lambda _: None)
    second = cache.stage("thing", "k1", build, log=lambda _: None)
    assert first == second
    assert (first / "artifact").read_text() == "x"
    assert len(builds) == 1


def test_failed_build_leaves_nothing_a_later_run_would_trust(cache_dir):
    def broken(d: Path) -> None:
        (d / "half").write_text("x")
        raise RuntimeError("download failed")

    with pytest.raises(RuntimeError):
        cache.stage("thing", "k1", broken, log=lambda _: None)
    assert list(cache_dir.glob("thing-*")) == []
    assert list(cache_dir.glob(".thing-*")) == []


def test_a_new_key_rebuilds_and_only_the_recent_builds_are_kept(cache_dir):
    for key in ("k1", "k2", "k3", "k4", "k5"):
        cache.stage("thing", key, lambda d: None, log=lambda _: None)
    kept = sorted(p.name for p in cache_dir.glob("thing-*"))
    assert kept == ["thing-k2", "thing-k3", "thing-k4", "thing-k5"]


def test_vmlinux_is_the_elf_inside_the_xz_stream_of_vmlinuz():
    elf = b"\x7fELF" + bytes(range(256)) * 64
    vmlinuz = b"MZ setup code \x00" * 100 + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"\x00" * 77
    assert kernel.extract_vmlinux(vmlinuz) == elf


def test_vmlinuz_without_xz_stream_is_a_clear_error():
    with pytest.raises(ValueError, match="no xz stream"):
        kernel.extract_vmlinux(b"MZ" + bytes(1000))


def test_boot_modules_load_dependencies_first_and_skip_built_ins(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/fs/mbcache.ko:\n"
        "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n"
        "kernel/net/9p/9pnet.ko:\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    order = initramfs.module_closure(tmp_path, ("virtio_pci", "ext4", "9pnet_virtio", "jbd2"))
    assert order == [
        "kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/mbcache.ko",
        "kernel/fs/ext4/ext4.ko",
        "kernel/net/9p/9pnet.ko",
        "kernel/net/9p/9pnet_virtio.ko",
    ]


def test_unknown_boot_module_is_named_in_the_error(tmp_path):
    (tmp_path / "modules.dep").write_text("")
    (tmp_path / "modules.builtin").write_text("")
    with pytest.raises(ValueError, match="overlay"):
        initramfs.module_closure(tmp_path, ("overlay",))


def test_guest_gets_the_project_dependencies_test_and_systemd_extras_but_no_linter(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\ndependencies = ["pynacl", "pyroute2>=0.9", "numpy"]\n'
        '[project.optional-dependencies]\ntest = ["pytest", "ruff"]\nsystemd = ["systemd-python"]\n'
    )
    assert rootfs.guest_packages(tmp_path) == [
        "lgpio",
        "numpy",
        "pynacl",
        "pyroute2",
        "pytest",
        "rpi-lgpio",
        "systemd-python",
    ]


@pytest.mark.vm
def test_guest_command_exit_code_and_job_files_come_back_and_the_repo_stays_untouched(tmp_path):
    from vmbench import image, vm

    missing = vm.missing_host_tools()
    if os.geteuid() != 0 or missing:
        pytest.skip(f"the VM needs root and {missing or 'its host tools'}")
    repo = Path(__file__).resolve().parent.parent
    marker = f"vmbench-guest-write-{os.getpid()}"
    img = image.build(repo, log=lambda _: None)
    result = vm.run(
        f"echo from-guest > /job/answer; touch /src/{marker} && echo wrote-src; exit 3",
        img,
        repo,
        job_dir=tmp_path,
        timeout=300,
    )
    assert result.returncode == 3, result.console[-2000:]
    assert (tmp_path / "answer").read_text() == "from-guest\n"
    assert "wrote-src" in result.output  # the guest may write its /src (a tmpfs overlay) ...
    assert not (repo / marker).exists()  # ... but none of it reaches the host's repository
