"""A checkpoint folder that cannot be written costs a warning, not an epoch.

The tests run as any user, root included (who ignores permission bits), so
a folder is made unusable by putting a plain file where it should be.
"""

import logging
import shutil

import pytest
import torch

from speechbrain_sense.training.resilient_checkpointer import (
    ResilientCheckpointer,
    check_writable,
)


def make_unusable(folder):
    """Replaces ``folder`` by a plain file: nothing can be written in it."""
    shutil.rmtree(folder)
    folder.write_text("not a folder any more")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def checkpointer(tmp_path, model, **kwargs):
    return ResilientCheckpointer(
        tmp_path / "save",
        {"model": model},
        fallback_dir=tmp_path / "fallback",
        retry_wait=0,
        **kwargs,
    )


def test_an_unwritable_folder_is_refused_before_training(tmp_path, model):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match=f"{tmp_path / 'file'}/save"):
        ResilientCheckpointer(tmp_path / "file" / "save", {"model": model})
    with pytest.raises(PermissionError, match="not writable"):
        check_writable(tmp_path / "file")


def test_a_folder_that_becomes_unwritable_falls_back_loudly_and_resumes(
    tmp_path, model, caplog
):
    ckpt = checkpointer(tmp_path, model, retries=2)
    first = ckpt.save_checkpoint(meta={"step": 1})
    assert first.path.parent == tmp_path / "save"
    make_unusable(tmp_path / "save")
    with torch.no_grad():
        model.weight.fill_(7.0)
    with caplog.at_level(logging.WARNING):
        saved = ckpt.save_checkpoint(meta={"step": 2})
    assert saved.path.parent == tmp_path / "fallback"
    assert "trying again" in caplog.text and "(2/2)" in caplog.text
    assert "CHECKPOINT NOT SAVED WHERE EXPECTED" in caplog.text
    assert str(tmp_path / "fallback") in caplog.text
    # A new run (new process) finds and loads the fallback checkpoint.
    fresh = torch.nn.Linear(3, 2)
    resumed = ResilientCheckpointer(
        tmp_path / "save2", {"model": fresh}, fallback_dir=tmp_path / "fallback"
    )
    found = resumed.recover_if_possible()
    assert found.meta["step"] == 2
    assert torch.equal(fresh.weight, torch.full((2, 3), 7.0))
    # Old checkpoints that cannot be deleted leave a warning, no error.
    with caplog.at_level(logging.WARNING):
        ckpt.delete_checkpoints(num_to_keep=0)
    assert "old checkpoints not deleted" in caplog.text


def test_a_save_that_fails_half_way_is_redone_in_the_fallback(
    tmp_path, model, caplog
):
    calls = []

    def flaky_save(obj, path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        torch.save(obj.state_dict(), path)

    ckpt = checkpointer(tmp_path, model)
    ckpt.custom_save_hooks["model"] = flaky_save
    with caplog.at_level(logging.ERROR):
        saved = ckpt.save_checkpoint()
    assert "CHECKPOINT SAVE FAILED" in caplog.text
    assert "No space left" in caplog.text
    assert saved.path.parent == tmp_path / "fallback"
    assert (saved.path / "model.ckpt").is_file()
    # The next save goes home again.
    assert ckpt.save_checkpoint().path.parent == tmp_path / "save"
