"""Adapters: the one place per library where code leans on what the library does not
promise (a private attribute, an undocumented hook, the order of its calls).

Each module here is small and has a test in tests/adapters/ that pins the installed
version (the pin in requirements.txt) and the behaviour relied on, so that an upgrade
fails there first. tests/adapters/test_no_private_use.py fails when a private attribute
of a library is used anywhere else in bots/, deia/ or ops/.
"""
