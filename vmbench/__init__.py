"""The virtual bench: Debian's stock kernel under QEMU, for tests that need batman-adv,
mac80211_hwsim, snd-aloop or gpio-sim, which this host's kernel lacks.

How to use it and write tests for it: vmbench/README.md. In short: put tests in tests/vm/, use the
`bench`/`line3` fixtures (vmbench.guest.Node per handset), run `make vm-test`.
"""
