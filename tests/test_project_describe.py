"""Describe-all over a project with the tiny GAR: captions only where none is, never over a
person's, each saved with its provenance as it comes; cancelled, killed and resumed."""

from __future__ import annotations

import signal
import subprocess

import pytest
from api_helpers import box_mask
from helpers import wait_until
from project_helpers import OWNER, annotate, gar_app, make_images, python, region

from gar_app.formats.caption_source import CaptionSource
from gar_app.model import GenerationSettings
from gar_app.project import LockedError, open_project
from gar_app.project.describe_all import JOB, DescribeAll

H, W = 40, 56
SETTINGS = GenerationSettings(max_new_tokens=4)
TODO = [("img0.png", 0), ("img1.png", 0), ("img2.png", 0), ("img2.png", 2)]  # regions without a caption


def _mask(k: int):
    return box_mask((H, W), 2 + k, 20 + 2 * k, 3 + 3 * k, 30 + k)


@pytest.fixture()
def folder(tmp_path):
    """Three images; their regions have no caption, a person's, an accepted, a model's and an edited one."""
    root = make_images(tmp_path / "p", ["img0.png", "img1.png", "img2.png"], H, W)
    model = CaptionSource.generated("an older model", {"max_new_tokens": 9})
    with open_project(root) as project:
        annotate(
            project,
            "img0.png",
            [
                region(0, _mask(0)),
                region(1, _mask(1), "a person's words", CaptionSource.typed("ann")),
                region(2, _mask(2), "accepted words", model.accept("ann")),
            ],
        )
        annotate(project, "img1.png", [region(0, _mask(3)), region(1, _mask(4), "old model words", model)])
        annotate(
            project,
            "img2.png",
            [region(0, _mask(5)), region(1, _mask(6), "edited words", model.edit("bo")), region(2, _mask(7))],
        )
    return root


def _captions(project) -> dict[tuple[str, int], tuple[str, CaptionSource | None]]:
    return {
        (stored.entry.path, r.index): (r.caption, r.caption_source)
        for stored in project.store.documents()
        for r in stored.document.regions
    }


def test_describe_all_captions_what_has_none_and_keeps_what_a_person_touched(folder, tiny_gar):
    with open_project(folder) as project:
        before = _captions(project)
        progress = DescribeAll(project, tiny_gar, SETTINGS).run()
        after = _captions(project)
        assert (progress.state, progress.total, progress.done, progress.failed) == ("finished", 4, 4, 0)
        for key, (caption, source) in after.items():
            if key in TODO:
                assert caption and source.by == "model" and source.model == tiny_gar.model_id
                assert source.decoding == SETTINGS.to_dict() and not source.kept
            else:
                assert (caption, source) == before[key]  # a person's, accepted, edited, an older model's
        opened = project.open_image("img2.png")  # the released single-region prompt, as Gar.describe
        assert after[("img2.png", 2)][0] == tiny_gar.describe(opened.image, _mask(7), SETTINGS).strip()
        assert project.store.counts().captioned == 8 and DescribeAll.unfinished(project.store) is None

        redo = DescribeAll(project, tiny_gar, SETTINGS, redo_model_captions=True).run()
        assert (redo.total, redo.done) == (5, 5)  # every model caption no person touched, the older one too
        again = _captions(project)
        assert again[("img1.png", 1)][1].model == tiny_gar.model_id
        kept = [("img0.png", 1), ("img0.png", 2), ("img2.png", 1)]
        assert [again[k] for k in kept] == [before[k] for k in kept]


DESCRIBE_SLOWLY = """
import sys, time
from gar_app.model import GenerationSettings, load_gar
from gar_app.project import open_project
from gar_app.project.describe_all import DescribeAll
gar = load_gar(sys.argv[2], device="cpu", dtype="fp32")
forward = gar.model.forward
def slow(*args, **kwargs):
    time.sleep(0.15)
    return forward(*args, **kwargs)
gar.model.forward = slow
with open_project(sys.argv[1]) as project:
    DescribeAll(project, gar, GenerationSettings(max_new_tokens=4)).run()
"""


@pytest.mark.slow
def test_describe_all_killed_midway_resumes_where_it_stopped(folder, tiny_gar, tiny_gar_dir):
    child = python(DESCRIBE_SLOWLY, str(folder), str(tiny_gar_dir), stderr=subprocess.PIPE)
    try:
        with open_project(folder) as project:
            wait_until(
                lambda: project.store.count_to_describe() <= 2 or child.poll() is not None, "2 captions"
            )
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert child.returncode == -signal.SIGKILL, child.stderr.read()
            left = project.store.count_to_describe()
            assert 0 < left <= 2
            written = {k: v for k, v in _captions(project).items() if k in TODO and v[0]}
            assert len(written) == 4 - left
            unfinished = DescribeAll.unfinished(project.store)  # its process is gone: offer to resume
            assert unfinished["state"] == "running" and unfinished["done"] >= 4 - left - 1

            progress = DescribeAll(project, tiny_gar, SETTINGS).run()
            assert (progress.total, progress.done, progress.state) == (left, left, "finished")
            captions = _captions(project)
            assert all(captions[key] == value for key, value in written.items())  # not redone
            assert all(captions[key][0] for key in TODO) and DescribeAll.unfinished(project.store) is None
    finally:
        child.kill()
        child.stderr.close()


def test_cancel_keeps_the_captions_made_and_no_partial_one(folder, tiny_gar, monkeypatch):
    import time

    forward = tiny_gar.model.forward
    steps = []

    def slow(*args, **kwargs):
        time.sleep(0.1)
        steps.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_gar.model, "forward", slow)
    longer = GenerationSettings(max_new_tokens=48)
    with open_project(folder) as project:
        job = DescribeAll(project, tiny_gar, longer)
        job.start()
        wait_until(lambda: job.progress.done >= 1, "a first caption")
        first = len(steps)
        wait_until(lambda: len(steps) >= first + 5, "the next caption under way")
        job.cancel()  # while the next region's caption is being generated
        job.join(60)
        progress = job.progress
        assert progress.state == "cancelled" and progress.done < 4
        assert project.store.count_to_describe() == 4 - progress.done
        assert DescribeAll.unfinished(project.store)["state"] == "cancelled"
        monkeypatch.undo()
        masks = {("img0.png", 0): _mask(0), ("img1.png", 0): _mask(3), ("img2.png", 0): _mask(5)}
        for (path, index), (caption, _) in _captions(project).items():
            if (path, index) in TODO and caption:  # whole captions only, none cut short
                image = project.open_image(path).image
                assert caption == tiny_gar.describe(image, masks[path, index], longer).strip()


def test_an_image_being_edited_is_left_alone_and_a_second_run_is_refused(folder, tiny_gar):
    with open_project(folder) as project:
        store = project.store
        store.acquire("img1.png", "tab on elsewhere pid 1", seconds=60)
        progress = DescribeAll(project, tiny_gar, SETTINGS).run()
        assert (progress.done, progress.skipped) == (3, 1)
        assert _captions(project)[("img1.png", 0)] == ("", None)
        store.release("img1.png", "tab on elsewhere pid 1")

        store.save_job(JOB, "describe-all on elsewhere pid 1", {"state": "running"}, 60)
        with pytest.raises(LockedError, match="already running"):
            DescribeAll(project, tiny_gar, SETTINGS, owner=OWNER).run()


@pytest.mark.slow
def test_gar_app_project_describe(folder, tiny_gar, tiny_gar_dir):
    argv = ["project", "describe", str(folder), "--model", str(tiny_gar_dir), "--device", "cpu"]
    result = gar_app(*argv, "--dtype", "fp32", "--max-new-tokens", "4")
    assert result.returncode == 0, result.stderr
    assert "described 4 region(s); 0 skipped" in result.stderr and "4/4" in result.stderr
    with open_project(folder) as project:
        captions = _captions(project)
        opened = project.open_image("img0.png")
        assert captions[("img0.png", 0)][0] == tiny_gar.describe(opened.image, _mask(0), SETTINGS).strip()
        assert captions[("img0.png", 0)][1].model == str(tiny_gar_dir)
    again = gar_app(*argv)
    assert (
        again.returncode == 0 and "nothing to describe" in again.stderr and "loading GAR" not in again.stderr
    )


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_keeps_whole_captions_and_says_so(folder, tiny_gar, tiny_gar_dir):
    longer = GenerationSettings(max_new_tokens=96)
    argv = [
        "project",
        "describe",
        str(folder),
        "--model",
        str(tiny_gar_dir),
        "--device",
        "cpu",
        "--dtype",
        "fp32",
    ]
    child = python(
        "import sys; from gar_app.cli import main; sys.exit(main(sys.argv[1:]))",
        *argv,
        "--max-new-tokens",
        str(longer.max_new_tokens),
        stderr=subprocess.PIPE,
    )
    try:
        with open_project(folder) as project:
            wait_until(
                lambda: project.store.count_to_describe() <= 3 or child.poll() is not None, "a caption"
            )
            child.send_signal(signal.SIGINT)  # Ctrl+C, most likely in the middle of the next caption
            _, err = child.communicate(timeout=120)
            assert child.returncode == 130 and err.rstrip().endswith("gar-app: interrupted"), err
            assert "Traceback" not in err
            assert DescribeAll.unfinished(project.store)["state"] == "interrupted"
            for (path, index), (caption, _) in _captions(project).items():
                if (path, index) in TODO and caption:  # each saved caption is a whole one
                    image = project.open_image(path).image
                    mask = {
                        "img0.png": _mask(0),
                        "img1.png": _mask(3),
                        "img2.png": _mask(5 if index == 0 else 7),
                    }
                    assert caption == tiny_gar.describe(image, mask[path], longer).strip()
    finally:
        child.kill()
        child.stderr.close()
