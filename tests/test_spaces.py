"""Hosting on Hugging Face Spaces: the Space config, and ZeroGPU's decorator when available."""

from __future__ import annotations

import sys
import types

import gradio
import yaml
from conftest import REPO

from gar_app.model import DEFAULT_MODEL


def _front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    assert text.startswith("---\n"), "Spaces reads its settings from the README's opening YAML block"
    return yaml.safe_load(text.split("---\n")[1])


def test_spaces_yaml_matches_the_readme_and_the_code():
    config = yaml.safe_load((REPO / "Spaces.yaml").read_text())
    assert config == _front_matter()
    assert config["sdk"] == "gradio" and config["sdk_version"] == gradio.__version__
    assert (REPO / config["app_file"]).is_file()
    assert DEFAULT_MODEL in config["models"] and config["suggested_hardware"]


def test_model_calls_run_under_zero_gpu_when_spaces_is_installed(monkeypatch):
    from components.common import on_gpu

    decorated = []

    def gpu(duration=None):
        def wrap(function):
            decorated.append((function, duration))
            return function

        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))

    def ask():
        return "answer"

    assert on_gpu(ask)() == "answer" and decorated == [(ask, 120)]
    monkeypatch.delitem(sys.modules, "spaces")
    monkeypatch.setattr("builtins.__import__", _refusing_import("spaces"))
    assert on_gpu(ask) is ask


def _refusing_import(name):
    real = __import__

    def importer(module, *args, **kwargs):
        if module == name:
            raise ImportError(module)
        return real(module, *args, **kwargs)

    return importer
