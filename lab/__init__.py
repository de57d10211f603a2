"""The test lab: simulated networks, network namespaces, virtual sound cards, handset daemons.

Shared by tests/, bench/ and the VM bench; not part of the product (the wheel ships only vomp,
hw and firmware). Importable from the repository root: pytest puts it on the path, and
bench/run_all.py runs each benchmark with the root on PYTHONPATH.
"""
