"""Checkpoint files, option checks on resume, and atomic writes that survive a full disk."""

import errno
import json
import os
import stat

import numpy as np
import pytest

from lstm_tutorial.checkpoint import (
    STATE_KEY,
    CheckpointError,
    check_resume_options,
    checkpoint_path,
    data_fingerprint,
    generator_state,
    load_checkpoint,
    restore_generator,
    save_checkpoint,
)
from lstm_tutorial.fileio import atomic_write


def _state(**changes):
    state = {"epoch": 2, "n_updates": 31, "batch_position": 4, "bad_counter": 1,
             "shuffle_rng": generator_state(np.random.default_rng(7)),
             "dropout_rng": generator_state(np.random.default_rng(8)),
             "options": {"dim_proj": 4, "lrate": 0.0001, "optimizer": "adadelta",
                         "dispFreq": 10, "max_epochs": 5, "dataset": "a.pkl"},
             "data_fingerprint": "f" * 64}
    state.update(changes)
    return state


def _write(path, **changes):
    params = {"Wemb": np.arange(8, dtype="float32").reshape(4, 2), "b": np.ones(2, "float32")}
    arguments = dict(params=params, best_p={name: value * 2 for name, value in params.items()},
                     optimizer_state=[("Wemb_rup2", np.full((4, 2), 0.5, "float32")),
                                      ("b_rup2", np.zeros(2, "float32"))],
                     history_errs=[[0.5, 0.4], [0.25, 0.3]], history_updates=[10, 20],
                     epoch_order=np.array([3, 0, 2, 1]), state=_state())
    arguments.update(changes)
    save_checkpoint(path, **arguments)
    return arguments


def test_checkpoint_path_sits_beside_model(tmp_path):
    assert checkpoint_path(tmp_path / "lstm_model.npz") == tmp_path / "lstm_model.npz.ckpt.npz"


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "m.npz.ckpt.npz"
    written = _write(path)
    loaded = load_checkpoint(path)
    for name, value in written["params"].items():
        np.testing.assert_array_equal(loaded.params[name], value)
        np.testing.assert_array_equal(loaded.best_p[name], written["best_p"][name])
    assert [name for name, _ in loaded.optimizer_state] == ["Wemb_rup2", "b_rup2"]
    np.testing.assert_array_equal(loaded.optimizer_state[0][1], np.full((4, 2), 0.5))
    assert loaded.history_errs == [[0.5, 0.4], [0.25, 0.3]]
    assert loaded.history_updates == [10, 20]
    np.testing.assert_array_equal(loaded.epoch_order, [3, 0, 2, 1])
    assert loaded.state["n_updates"] == 31
    assert loaded.options["optimizer"] == "adadelta"


def test_checkpoint_between_epochs_and_before_validation(tmp_path):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path, best_p=None, epoch_order=None, history_errs=[], history_updates=[])
    loaded = load_checkpoint(path)
    assert loaded.best_p is None
    assert loaded.epoch_order is None
    assert loaded.history_errs == []


def test_checkpoint_loads_without_pickle(tmp_path):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path)
    with np.load(path, allow_pickle=False) as archive:
        state = json.loads(str(archive[STATE_KEY]))
    assert state["format"] == 1


def test_generator_state_restores_draws():
    generator = np.random.default_rng(11)
    generator.random(5)
    saved = json.loads(json.dumps(generator_state(generator)))
    expected = generator.permutation(20)
    restored = restore_generator(np.random.default_rng(0), saved)
    np.testing.assert_array_equal(restored.permutation(20), expected)


def test_generator_state_other_kind_rejected():
    state = generator_state(np.random.Generator(np.random.MT19937(1)))
    with pytest.raises(ValueError, match="MT19937"):
        restore_generator(np.random.default_rng(0), state)


def test_data_fingerprint_sees_order_and_ids():
    train = ([[2, 3], [4]], [0, 1])
    base = data_fingerprint(train, ([[5]], [1]))
    assert base == data_fingerprint(([[2, 3], [4]], [0, 1]), ([[5]], [1]))
    assert base != data_fingerprint(([[4], [2, 3]], [1, 0]), ([[5]], [1]))
    assert base != data_fingerprint(([[2, 3], [4]], [0, 1]), ([[6]], [1]))
    assert base != data_fingerprint(([[2], [3, 4]], [0, 1]), ([[5]], [1]))


def test_resume_options_name_each_difference(tmp_path):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path)
    checkpoint = load_checkpoint(path)
    options = dict(checkpoint.options, dim_proj=8, lrate=0.5)
    with pytest.raises(ValueError) as raised:
        check_resume_options(checkpoint, options)
    message = str(raised.value)
    assert "dim_proj=8 (checkpoint: 4)" in message
    assert "lrate=0.5 (checkpoint: 0.0001)" in message
    assert "optimizer" not in message


def test_resume_options_allow_display_and_length(tmp_path):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path)
    checkpoint = load_checkpoint(path)
    check_resume_options(checkpoint, dict(checkpoint.options, dispFreq=1, max_epochs=50,
                                          dataset="/elsewhere/a.pkl"))


def _rewrite(path, **replacements):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, value in replacements.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    np.savez(path, **arrays)


def _changed_state(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        state = json.loads(str(archive[STATE_KEY]))
    return np.array(json.dumps(dict(state, **changes)))


@pytest.mark.parametrize("damage, message", [
    (lambda path: {STATE_KEY: _changed_state(path, format=99)}, "format is 99"),
    (lambda path: {STATE_KEY: None}, "no state_json"),
    (lambda path: {STATE_KEY: np.array("{not json")}, "not valid JSON"),
    (lambda path: {STATE_KEY: _changed_state(path, n_updates="31")}, "'n_updates'"),
    (lambda path: {STATE_KEY: _changed_state(
        path, shuffle_rng={"bit_generator": "Evil", "state": {}})}, "shuffle_rng"),
    (lambda path: {"history_updates": np.array([10])}, "do not fit together"),
    (lambda path: {"optimizer/1": None}, "optimizer/1"),
    (lambda path: {"param/b": np.array(["text"])}, "not a number type"),
])
def test_damaged_checkpoint_rejected(tmp_path, damage, message):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path)
    _rewrite(path, **damage(path))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_checkpoint_suggests_fresh_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="without --resume"):
        load_checkpoint(tmp_path / "m.npz.ckpt.npz")


def test_atomic_write_full_disk_keeps_previous(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"previous version")
    with pytest.raises(OSError) as raised:
        with atomic_write(target) as handle:
            handle.write(b"half of the new")
            handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert raised.value.errno == errno.ENOSPC
    assert str(target) in str(raised.value)
    assert "previous file" in str(raised.value)
    assert target.read_bytes() == b"previous version"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.npz"]


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_permissions(tmp_path):
    old_umask = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.bin"
        with atomic_write(fresh) as handle:
            handle.write(b"x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640

        existing = tmp_path / "existing.bin"
        existing.write_bytes(b"old")
        existing.chmod(0o604)
        with atomic_write(existing) as handle:
            handle.write(b"new")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o604
    finally:
        os.umask(old_umask)


def test_checkpoint_full_disk_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "m.npz.ckpt.npz"
    _write(path)
    before = path.read_bytes()

    def savez_until_full(handle, **arrays):
        handle.write(b"PK\x03\x04" + bytes(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_until_full)
    with pytest.raises(OSError, match="No space left"):
        _write(path, history_errs=[[0.1, 0.1]] * 3, history_updates=[1, 2, 3])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).state["n_updates"] == 31
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]
