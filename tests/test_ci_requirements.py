"""What CI is meant to have (shared test data, Chromium) fails a test when missing under
``.ci/run``, and skips it, saying why, on a developer's clone."""

from __future__ import annotations

import pytest
from conftest import REQUIRE_BROWSER, REQUIRE_SHARED, shared_data, unavailable


@pytest.mark.parametrize("requirement", [REQUIRE_SHARED, REQUIRE_BROWSER])
def test_missing_requirement_skips_unless_ci_requires_it(monkeypatch, requirement):
    monkeypatch.delenv(requirement, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not here"):
        unavailable("not here", requirement)
    monkeypatch.setenv(requirement, "1")
    with pytest.raises(pytest.fail.Exception, match=f"not here .{requirement}=1"):
        unavailable("not here", requirement)


def test_missing_shared_file_fails_under_ci(monkeypatch):
    monkeypatch.setenv(REQUIRE_SHARED, "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_file.json"):
        shared_data("garbench", "no_such_file.json")


def test_ci_script_requires_both():
    from conftest import REPO

    script = (REPO / ".ci" / "run").read_text()
    assert f"{REQUIRE_SHARED}=1" in script and f"{REQUIRE_BROWSER}=1" in script and "make test" in script
