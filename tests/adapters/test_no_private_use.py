"""No private attribute of a library is used outside its adapter (deia/adapters/,
bots/runner/uvicorn_adapter.py), so a library upgrade can only break code whose
assumptions a pinning test states.

Flagged in bots/, deia/ and ops/ (migrations aside): `x._name` on anything but self and
cls (`super()._name` too: overriding a library's private method), a private name given
to getattr/setattr/hasattr/delattr as a string, and an import of a private module or
name from another package. Our own private names, and the few a library documents as
public, are listed in ALLOWED with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bots", "deia", "ops")
ADAPTERS = ("deia/adapters/", "bots/runner/uvicorn_adapter.py")
OURS = ("bots", "deia", "ops")

ALLOWED = {
    "_meta": "Django documents Model._meta as a public API (docs: Model _meta API)",
    "_deia_request_token": "ours: deia.celery keeps the log context's token on Celery's task request",
    "_value_": "the enum module documents setting _value_ in a member's __new__ (docs: enum HOWTO, __new__)",
    "_base_manager": "Django documents Model._base_manager (docs: Managers, using managers for related object access)",
    "_exit": "os._exit is documented (docs: os, Process Management): a forked child ends without the parent's cleanup",
}

ATTRIBUTE = re.compile(r"(?P<owner>\w+|\))\.(?P<name>_[A-Za-z]\w*)")
BY_STRING = re.compile(r"\b(?:get|set|has|del)attr\(\s*[^,]+,\s*[\"'](?P<name>_[A-Za-z]\w*)[\"']")
IMPORT = re.compile(r"^\s*from\s+(?P<module>[\w.]+)\s+import\s+(?P<names>.+)$")


def private_uses(text: str) -> list[str]:
    """The private names a piece of product code uses, as `line: name`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        imported = IMPORT.match(code)
        if imported:
            if _private_import(imported["module"], imported["names"]):
                found.append(f"{number}: from {imported['module']} import {imported['names'].strip()}")
            continue
        for match in ATTRIBUTE.finditer(code):
            if match["owner"] not in ("self", "cls") and match["name"] not in ALLOWED:
                found.append(f"{number}: {match['owner']}.{match['name']}")
        for match in BY_STRING.finditer(code):
            if match["name"] not in ALLOWED:
                found.append(f"{number}: attribute {match['name']!r}")
    return found


def _private_import(module: str, names: str) -> bool:
    if module.split(".")[0] in OURS:
        return False
    imported = [name.strip(" ()").split(" as ")[0] for name in names.split(",")]
    return any(part.startswith("_") for part in module.split(".")[1:]) or any(name.startswith("_") for name in imported)


def product_files():
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in relative and not relative.startswith(ADAPTERS):
                yield relative, path


def test_no_private_attribute_of_a_library_is_used_outside_the_adapters():
    offences = [f"{relative}:{use}" for relative, path in product_files() for use in private_uses(path.read_text())]

    assert offences == [], "move these into the library's adapter (deia/adapters/) with a pinning test:\n" + "\n".join(
        offences
    )


def test_the_check_finds_what_it_is_for():
    sample = """
for model, model_admin in site._registry.items():
    return super()._brpop_read(**options)
if getattr(user, "_wrapped", None) is empty:
from django.utils._os import safe_join
from kombu.utils.objects import _private
self._mine = 1
name = Bot._meta.verbose_name
"""

    assert [use.split(": ", 1)[1] for use in private_uses(sample)] == [
        "site._registry",
        ")._brpop_read",
        "attribute '_wrapped'",
        "from django.utils._os import safe_join",
        "from kombu.utils.objects import _private",
    ]


def test_the_adapters_are_where_the_private_uses_went():
    adapters = [ROOT / "deia/adapters/kombu.py", ROOT / "deia/adapters/django.py"]

    assert all(private_uses(path.read_text()) for path in adapters)
