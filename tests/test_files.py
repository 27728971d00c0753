"""Result files (eval records, batch merges, tracks) are replaced whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from gar_app import files
from gar_app.files import write_json_atomically


def test_a_json_file_is_replaced_whole_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "records.json"
    write_json_atomically(path, [{"id": "q1", "model_output": "ünïcode"}])
    assert path.read_text(encoding="utf-8") == '[{"id": "q1", "model_output": "ünïcode"}]\n'
    write_json_atomically(path, {"second": True})
    assert json.loads(path.read_text()) == {"second": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "records.json"
    path.write_text("[1, 2, 3]\n")

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomically(path, [4, 5, 6])
    assert path.read_text() == "[1, 2, 3]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.json"]


def test_the_new_file_has_the_permissions_open_would_give_it(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    atomic = tmp_path / "atomic.json"
    write_json_atomically(atomic, {})
    assert atomic.stat().st_mode == plain.stat().st_mode


def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(files, "sync_folder", synced.append)
    write_json_atomically(tmp_path / "out.json", {})
    assert synced == [tmp_path]
