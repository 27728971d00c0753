"""The import graph keeps its layers: no cycles, no import up a layer, every module placed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


import_graph = load_script()


def test_every_module_is_on_a_layer():
    assert import_graph.check().unplaced == []


def test_no_two_modules_import_each_other():
    assert import_graph.check().cycles == []


def test_no_import_runs_up_a_layer():
    assert import_graph.check().upward == []


def test_no_module_imports_its_own_package_facade():
    assert import_graph.check().own_package == []


def test_the_script_says_so_and_exits_0():
    result = subprocess.run(
        [sys.executable, "scripts/import_graph.py"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 cycles" in result.stdout and "0 upward imports" in result.stdout


# -- the checker itself, on a made-up tree -----------------------------------------------------

LAYERS = [
    ("low", ["gar_app", "gar_app.low", "gar_app.pair_a", "gar_app.pair_b", "gar_app.pkg.*"]),
    ("high", ["gar_app.high", "app"]),
]


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_import_inside_a_function_that_runs_up_a_layer_is_found(tmp_path):
    repo = write(
        tmp_path,
        {
            "gar_app/__init__.py": "",
            "gar_app/low.py": "def f():\n    from gar_app.high import g\n",
            "gar_app/high.py": "from gar_app import low\n",
            "app.py": "import gar_app.high\n",
        },
    )
    report = import_graph.check(repo, LAYERS)
    assert len(report.upward) == 1 and report.upward[0].startswith("gar_app/low.py:2: gar_app.low (layer 1)")
    assert report.cycles == [["gar_app.high", "gar_app.low"]]  # high imports low back


def test_a_pair_that_only_meets_under_type_checking_is_a_cycle(tmp_path):
    repo = write(
        tmp_path,
        {
            "gar_app/__init__.py": "",
            "gar_app/pair_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gar_app.pair_b import B\n",
            "gar_app/pair_b.py": "from gar_app.pair_a import A\n",
        },
    )
    report = import_graph.check(repo, LAYERS)
    assert report.cycles == [["gar_app.pair_a", "gar_app.pair_b"]] and report.upward == []


def test_a_package_may_import_its_submodules_but_they_may_not_import_it_back(tmp_path):
    repo = write(
        tmp_path,
        {
            "gar_app/__init__.py": "",
            "gar_app/pkg/__init__.py": "NAME = 1\nfrom gar_app.pkg.facade import Thing\n",
            "gar_app/pkg/facade.py": "class Thing: ...\n",
            "gar_app/pkg/user.py": "from gar_app.pkg import NAME\n",  # defined there, no circle: fine
            "gar_app/pkg/loop.py": "from gar_app.pkg import Thing\n",  # a re-export: from facade instead
        },
    )
    report = import_graph.check(repo, LAYERS)
    assert report.cycles == [] and report.upward == []
    assert report.own_package == [
        "gar_app/pkg/loop.py:1: gar_app.pkg.loop imports Thing from its package gar_app.pkg, "
        "which does not define it"
    ]
    write(repo, {"gar_app/pkg/__init__.py": "NAME = 1\nfrom gar_app.pkg import user\n"})
    assert import_graph.check(repo, LAYERS).own_package[1] == (
        "gar_app/pkg/user.py:1: gar_app.pkg.user imports gar_app.pkg, which imports it back"
    )


def test_a_new_module_on_no_layer_fails(tmp_path):
    repo = write(tmp_path, {"gar_app/__init__.py": "", "gar_app/store.py": "", "gar_app/pkg/new.py": ""})
    report = import_graph.check(repo, LAYERS)
    assert report.unplaced == ["gar_app.store"], "pkg.* places everything in pkg"
    assert report.problems == 1
