"""The Raspberry Pi SD image: `python -m image build` builds it, `python -m image test` boots it.

See image/README.md. Like vmbench/, a build tool of the repository, not part of the package.
"""
