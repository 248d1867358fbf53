"""The docs point at tests that exist."""

from __future__ import annotations

import re

from tests.hub import REPO

SECURITY = REPO / "docs" / "security.md"


def test_every_test_the_security_review_cites_exists():
    text = SECURITY.read_text()
    cited = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", text)
    assert len(cited) > 20
    missing = []
    for module, name in cited:
        path = REPO / "tests" / module
        if not path.exists() or (name and f"def {name}(" not in path.read_text()):
            missing.append(f"{module}::{name}" if name else module)
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"
