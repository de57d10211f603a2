#!/usr/bin/python3
"""Apply the card's /boot/firmware/handset.toml to the system at every boot; grow the root
partition to fill the card at the first.

Runs as root before sshd and the handset service (handset-firstboot.service). It owns only the
keys the daemon leaves to the image: [diag] authorized_keys (the `diag` user's SSH keys) and
[system] hostname and wifi_country. A bad value is logged with file, line, key and the fix, and
skipped: the system still boots with what was good (and with the keys of the last good boot), so
it can be diagnosed. Standard library only: it runs with Debian's python3, outside the venv.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CONFIG = Path("/boot/firmware/handset.toml")
STATE = Path("/var/lib/handset-image")
DIAG_KEYS = Path("/etc/handset/diag_authorized_keys")
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MIN_GROWTH = 16 * 1024 * 1024  # bytes of unused card after the root partition worth a resize


@dataclass
class Settings:
    """What the config asks of the system; None/empty where it says nothing (or nothing valid)."""

    hostname: str | None = None
    wifi_country: str | None = None
    authorized_keys: list[str] | None = None  # None: keep the keys already installed
    errors: list[str] = field(default_factory=list)


def read_settings(text: str, path: Path = CONFIG) -> Settings:
    """The settings in a handset.toml; total: every problem becomes an error message."""
    settings = Settings()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        settings.errors.append(
            f"{path}: {err}; fix the TOML syntax there (the diag SSH keys of the last good boot"
            " stay in place)"
        )
        return settings

    def error(section: str, key: str, problem: str, fix: str) -> None:
        line = line_of(text, section, key)
        where = f"{path}:{line}" if line else str(path)
        settings.errors.append(f"{where}: [{section}] {key} {problem}; fix: {fix}")

    system = doc.get("system", {})
    diag = doc.get("diag", {})
    for section, table in (("system", system), ("diag", diag)):
        if not isinstance(table, dict):
            error(section, "", "is not a table", f"write it as a [{section}] section")
    if isinstance(system, dict):
        hostname = system.get("hostname")
        if hostname is not None:
            if isinstance(hostname, str) and HOSTNAME.match(hostname):
                settings.hostname = hostname
            else:
                fix = 'lower-case letters, digits and "-", at most 63, e.g. "handset-kim"'
                error("system", "hostname", f"= {hostname!r} is not a host name", fix)
        country = system.get("wifi_country")
        if country is not None:
            if isinstance(country, str) and COUNTRY.match(country):
                settings.wifi_country = country
            else:
                fix = 'two capital letters (ISO 3166-1), e.g. "DE"'
                error("system", "wifi_country", f"= {country!r} is not a country code", fix)
    if isinstance(diag, dict) and "authorized_keys" in diag:
        keys = diag["authorized_keys"]
        if not isinstance(keys, list):
            fix = 'authorized_keys = ["ssh-ed25519 AAAA... you@laptop"]'
            error("diag", "authorized_keys", "is not a list", fix)
        else:
            good = []
            for number, key in enumerate(keys, 1):
                problem = key_problem(key)
                if problem:
                    fix = "paste the one line of your ~/.ssh/id_ed25519.pub (or other .pub)"
                    error("diag", "authorized_keys", f"entry {number} {problem}", fix)
                else:
                    good.append(" ".join(key.split()))
            settings.authorized_keys = good
    return settings


def key_problem(key: object) -> str | None:
    """Why `key` is not an OpenSSH public key line, or None when it is one."""
    if not isinstance(key, str):
        return "is not a string"
    if "\n" in key or "\r" in key:
        return "spans several lines"
    parts = key.split()
    if len(parts) < 2:
        return "is not '<type> <base64> [comment]'"
    kind, blob = parts[0], parts[1]
    if kind not in KEY_TYPES:
        return f"has an unknown key type {kind!r} (options are not accepted either)"
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "has a damaged base64 part"
    length = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 + length or raw[4 : 4 + length] != kind.encode():
        return f"has a base64 part that is not a {kind} key"
    return None


def line_of(text: str, section: str, key: str) -> int | None:
    """The line number of `key =` inside `[section]`, for error messages (tomllib has none)."""
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if current == section and not key:
                return number
            continue
        if current == section and key and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return number
    return None


def log(message: str) -> None:
    print(f"handset-firstboot: {message}", flush=True)


def run(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(
        argv, input=stdin, check=True, capture_output=True, text=True
    ).stdout.strip()


def grow_root() -> None:
    """Grow the root partition and its ext4 to the end of the card, once."""
    marker = STATE / "root-grown"
    if marker.exists():
        return
    part = run("findmnt", "-no", "SOURCE", "/")
    name = Path(part).name
    disk = "/dev/" + run("lsblk", "-no", "PKNAME", part).splitlines()[0]
    number = Path(f"/sys/class/block/{name}/partition").read_text().strip()
    start = int(Path(f"/sys/class/block/{name}/start").read_text()) * 512
    size = int(Path(f"/sys/class/block/{name}/size").read_text()) * 512
    disk_size = int(run("blockdev", "--getsize64", disk))
    if disk_size - (start + size) >= MIN_GROWTH:
        run("sfdisk", "--quiet", "--force", "--no-reread", "-N", number, disk, stdin=", +\n")
        run("partx", "--update", "--nr", number, disk)
        run("resize2fs", part)
        new_size = int(run("blockdev", "--getsize64", part))
        log(f"root partition {part} grown from {size >> 20} MiB to {new_size >> 20} MiB")
    STATE.mkdir(parents=True, exist_ok=True)
    marker.touch()


def ssh_host_keys() -> None:
    """Each card gets its own host keys (the image ships none)."""
    if not list(Path("/etc/ssh").glob("ssh_host_*_key")):
        run("ssh-keygen", "-A")
        log("SSH host keys generated")


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def apply_hostname(hostname: str) -> None:
    if Path("/etc/hostname").read_text().strip() != hostname:
        write_atomically(Path("/etc/hostname"), hostname + "\n")
        hosts = Path("/etc/hosts").read_text().splitlines()
        hosts = [line for line in hosts if not line.startswith("127.0.1.1")]
        write_atomically(Path("/etc/hosts"), "\n".join([*hosts, f"127.0.1.1\t{hostname}"]) + "\n")
    run("hostname", hostname)
    log(f"hostname {hostname}")


def apply_wifi_country(country: str) -> None:
    conf = Path("/etc/modprobe.d/handset-wifi-country.conf")
    write_atomically(conf, f"options cfg80211 ieee80211_regdom={country}\n")
    if Path("/sys/module/cfg80211").exists():
        subprocess.run(["iw", "reg", "set", country], check=False)
    log(f"Wi-Fi country {country}")


def apply_authorized_keys(keys: list[str]) -> None:
    """The keys sshd accepts for `diag` (systemd/sshd-diag.conf: AuthorizedKeysFile)."""
    DIAG_KEYS.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(DIAG_KEYS, "".join(f"{key}\n" for key in keys))
    log(f"{len(keys)} SSH key(s) for diag")


def main() -> int:
    steps = [("grow the root partition", grow_root), ("SSH host keys", ssh_host_keys)]
    failed = False
    for what, step in steps:
        try:
            step()
        except (OSError, subprocess.CalledProcessError) as err:
            log(f"error: {what}: {err}")
            failed = True
    try:
        text = CONFIG.read_text()
    except OSError as err:
        log(f"error: cannot read {CONFIG}: {err}; the defaults stay")
        return 1
    settings = read_settings(text)
    for message in settings.errors:
        log(f"error: {message}")
    actions = [
        (settings.hostname, apply_hostname),
        (settings.wifi_country, apply_wifi_country),
        (settings.authorized_keys, apply_authorized_keys),
    ]
    for value, apply in actions:
        if value is not None:
            try:
                apply(value)  # type: ignore[operator]
            except (OSError, subprocess.CalledProcessError) as err:
                log(f"error: {apply.__name__}: {err}")
                failed = True
    return 1 if failed or settings.errors else 0


if __name__ == "__main__":
    sys.exit(main())
