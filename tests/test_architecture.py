"""The layers of docs/architecture.md, checked: what may import what, and what the core
costs to import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools.config.setupcfg import read_configuration

from tests.hub import REPO

PACKAGE = "jupyterhub_annotations"
CORE = REPO / "authenticator"
# The in-hub adapters live beside the core but are not part of it.
ADAPTERS = {"auth.py", "cli.py"}
# What the core must never load: the web framework, the hub, their templates and config.
WEB = {"tornado", "jupyterhub", "jinja2", "traitlets"}
HUB_PRIVATE = ("_jupyterhub_user", "_token_authenticated", "_stop_pending", "searchpath")


def core_modules() -> list[Path]:
    return sorted(
        p
        for p in CORE.rglob("*.py")
        # Migrations run inside alembic, not imported by anyone.
        if p.name not in ADAPTERS and "migrations" not in p.parts
    )


def module_name(path: Path) -> str:
    """The installed name of a module of the repository (`jupyterhub_annotations.*`)."""
    dotted = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    return f"{PACKAGE}.{dotted}"


def imported(path: Path) -> set[str]:
    """What a module imports: the top-level name of an absolute import, ``.name`` for a
    module of its own package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module] if node.module else [a.name for a in node.names]
            names |= {"." + m.split(".")[0] for m in modules}
    return names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_core_module_imports_no_web_framework_and_no_adapter(path):
    found = imported(path) & (WEB | {"." + p.removesuffix(".py") for p in ADAPTERS})
    assert not found, f"{path.relative_to(REPO)} imports {sorted(found)}"
    ours = [
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
    ]
    outward = [
        m
        for m in ours
        if m.startswith(f"{PACKAGE}.handlers")
        or m in {f"{PACKAGE}.authenticator.{a.removesuffix('.py')}" for a in ADAPTERS}
    ]
    assert not outward, f"{path.relative_to(REPO)} imports {outward}"


def test_the_distribution_installs_one_import_name_and_nothing_imports_the_folders():
    """No generic top-level ``authenticator`` or ``handlers`` in site-packages, and no
    module of ours imports the folders by their bare names (it would load a second
    copy of every module beside the installed one)."""
    options = read_configuration(REPO / "setup.cfg")["options"]
    assert {name.split(".")[0] for name in options["packages"]} == {PACKAGE}
    sources = [
        p
        for folder in ("authenticator", "handlers", "tests", "bench")
        for p in (REPO / folder).rglob("*.py")
    ]
    bare = [
        f"{path.relative_to(REPO)}: {name}"
        for path in [*sources, REPO / "jupyterhub_config.py"]
        for name in imported(path)
        if name in ("authenticator", "handlers")
    ]
    assert not bare


def test_only_hub_compat_touches_jupyterhub_private_attributes():
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted([*CORE.rglob("*.py"), *(REPO / "handlers").glob("*.py")])
        if path.name != "hub_compat.py"
        for name in HUB_PRIVATE
        if name in path.read_text()
    ]
    assert not offenders


def test_importing_the_core_loads_no_web_framework_and_hashes_nothing():
    """In a fresh interpreter: every core module imported, then what got loaded, and
    whether Argon2 ran; the import time is printed (`pytest -s`) for the record."""
    names = [module_name(p) for p in core_modules()]
    script = f"""
import json, sys, time
import argon2
hashed = []
original = argon2.PasswordHasher.hash
argon2.PasswordHasher.hash = lambda self, *a, **k: hashed.append(1) or original(self, *a, **k)
started = time.perf_counter()
for name in {names!r}:
    __import__(name)
seconds = time.perf_counter() - started
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {WEB!r})
print(json.dumps({{"loaded": loaded, "hashed": len(hashed), "seconds": seconds}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    print(f"core import: {result['seconds'] * 1000:.0f} ms for {len(names)} modules")
    assert result["loaded"] == [] and result["hashed"] == 0, result
