"""Stopping, killing and resuming training gives the history of an uninterrupted run.

Every run here trains the same tiny model (dim_proj 8, 540 updates of two
reviews each) on a small synthetic dataset, so PyTensor compiles one graph
and its on-disk cache serves every later run, in this process and in the
subprocesses. Signals are sent from inside the update function (in process)
or by the test to a subprocess started through tests/fault_runner.py, which
can slow updates down or pause in the middle of a checkpoint write.
"""

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_dataset
from lstm_tutorial import training
from lstm_tutorial.checkpoint import checkpoint_path, load_checkpoint
from lstm_tutorial.interrupts import TrainingAborted
from lstm_tutorial.modelio import open_model
from lstm_tutorial.training import train_lstm

PARAM_NAMES = ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b")
# 36 training reviews in minibatches of 2: 18 updates an epoch, 540 in all.
# Validations every 20 updates and checkpoints every 25 fall at different
# places in an epoch; the errors start to move after about 250 updates.
RUN = dict(dim_proj=8, n_words=10, batch_size=2, validFreq=20, saveFreq=25, max_epochs=30,
           patience=100, valid_portion=0.25, dispFreq=500)
FAULT_RUNNER = Path(__file__).resolve().parent / "fault_runner.py"
WAIT_SECONDS = 300


def _reviews(rng, count):
    # The label's word (2 or 3) appears once or twice among noise words 4..9,
    # and the other label's word shows up in a fifth of the reviews.
    seqs, labels = [], []
    for index in range(count):
        label = index % 2
        length = rng.randint(3, 9)
        seq = [rng.randint(4, 9) for _ in range(length)]
        for _ in range(rng.randint(1, 2)):
            seq[rng.randrange(length)] = 2 + label
        if rng.random() < 0.2:
            seq[rng.randrange(length)] = 3 - label
        seqs.append(seq)
        labels.append(label)
    return seqs, labels


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("resume_data") / "small.pkl"
    return write_dataset(path, _reviews(rng, 48), _reviews(rng, 16))


@pytest.fixture(scope="module")
def reference(small_dataset, tmp_path_factory):
    """The saved model of a run that was never interrupted."""
    saveto = tmp_path_factory.mktemp("reference") / "m.npz"
    result = train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    assert not result.interrupted
    assert not checkpoint_path(saveto).exists()
    return open_model(saveto)


def _assert_same_run(saveto, reference):
    model = open_model(saveto)
    np.testing.assert_array_equal(model["history_errs"], reference["history_errs"])
    np.testing.assert_array_equal(model["history_updates"], reference["history_updates"])
    for name in PARAM_NAMES + ("train_err", "valid_err", "test_err"):
        np.testing.assert_array_equal(model[name], reference[name], err_msg=name)
    assert not checkpoint_path(saveto).exists()


def _signal_after_update(monkeypatch, update, *signals):
    """Make the run send ``signals`` to itself right after update number ``update``."""
    build = training._build_functions

    def build_with_signals(*args, **kwargs):
        functions = build(*args, **kwargs)
        f_update = functions.f_update
        count = {"updates": 0}

        def update_then_signal(lrate):
            f_update(lrate)
            count["updates"] += 1
            if count["updates"] == update:
                for signum in signals:
                    os.kill(os.getpid(), signum)

        functions.f_update = update_then_signal
        return functions

    monkeypatch.setattr(training, "_build_functions", build_with_signals)


def test_reference_history_moves(reference):
    # A history that never changes would make the comparisons below weak.
    errors = reference["history_errs"]
    assert errors.shape == (27, 2)
    assert len(set(errors[:, 0].tolist())) >= 4


def test_sigterm_stops_saves_and_resumes(small_dataset, reference, tmp_path, monkeypatch):
    saveto = tmp_path / "m.npz"
    _signal_after_update(monkeypatch, 30, signal.SIGTERM)
    result = train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    assert result.interrupted
    assert result.stop_signal == signal.SIGTERM

    # The run stopped after the update that got the signal, in epoch 1.
    checkpoint = load_checkpoint(checkpoint_path(saveto))
    assert checkpoint.state["n_updates"] == 30
    assert checkpoint.state["epoch"] == 1
    assert checkpoint.state["batch_position"] == 12
    assert checkpoint.history_updates == [20]
    assert open_model(saveto)["history_updates"].tolist() == [20]

    monkeypatch.undo()
    result = train_lstm(dataset=str(small_dataset), saveto=str(saveto), resume=True, **RUN)
    assert not result.interrupted
    _assert_same_run(saveto, reference)


def test_second_signal_aborts_keeping_checkpoint(small_dataset, reference, tmp_path,
                                                 monkeypatch):
    saveto = tmp_path / "m.npz"
    _signal_after_update(monkeypatch, 40, signal.SIGINT, signal.SIGTERM)
    with pytest.raises(TrainingAborted) as raised:
        train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    assert raised.value.signum == signal.SIGTERM
    assert load_checkpoint(checkpoint_path(saveto)).state["n_updates"] == 25
    assert open_model(saveto)["history_updates"].tolist() == [20]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.npz", "m.npz.ckpt.npz"]

    monkeypatch.undo()
    train_lstm(dataset=str(small_dataset), saveto=str(saveto), resume=True, **RUN)
    _assert_same_run(saveto, reference)


def test_full_disk_during_checkpoint_keeps_previous(small_dataset, reference, tmp_path,
                                                    monkeypatch):
    saveto = tmp_path / "m.npz"
    savez = np.savez
    calls = {"count": 0}

    def savez_filling_disk(handle, **arrays):
        # Calls 1 and 2 are the checkpoint and model at update 25; call 3 is
        # the checkpoint at update 50, which runs out of space half way.
        calls["count"] += 1
        if calls["count"] == 3:
            handle.write(b"PK\x03\x04" + bytes(4096))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return savez(handle, **arrays)

    monkeypatch.setattr(np, "savez", savez_filling_disk)
    with pytest.raises(OSError) as raised:
        train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    assert raised.value.errno == errno.ENOSPC
    assert "m.npz.ckpt.npz" in str(raised.value)
    monkeypatch.undo()

    assert load_checkpoint(checkpoint_path(saveto)).state["n_updates"] == 25
    assert open_model(saveto)["history_updates"].tolist() == [20]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.npz", "m.npz.ckpt.npz"]
    train_lstm(dataset=str(small_dataset), saveto=str(saveto), resume=True, **RUN)
    _assert_same_run(saveto, reference)


def test_fresh_run_refuses_unfinished_checkpoint(small_dataset, tmp_path):
    saveto = tmp_path / "m.npz"
    checkpoint_path(saveto).write_bytes(b"an unfinished run")
    with pytest.raises(FileExistsError, match="--resume"):
        train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    assert checkpoint_path(saveto).read_bytes() == b"an unfinished run"


def test_resume_without_checkpoint_starts_anew(small_dataset, reference, tmp_path, caplog):
    saveto = tmp_path / "m.npz"
    train_lstm(dataset=str(small_dataset), saveto=str(saveto), resume=True, **RUN)
    assert "no unfinished run to continue; starting a new run" in caplog.text
    _assert_same_run(saveto, reference)


def test_resume_needs_saveto(small_dataset):
    with pytest.raises(ValueError, match="resuming needs saveto"):
        train_lstm(dataset=str(small_dataset), saveto="", resume=True, **RUN)


@pytest.fixture(scope="module")
def interrupted_folder(small_dataset, tmp_path_factory):
    """A model folder left by a run that SIGINT stopped after update 30."""
    saveto = tmp_path_factory.mktemp("interrupted") / "m.npz"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _signal_after_update(monkeypatch, 30, signal.SIGINT)
        train_lstm(dataset=str(small_dataset), saveto=str(saveto), **RUN)
    return saveto.parent


@pytest.fixture
def interrupted_run(interrupted_folder, tmp_path):
    """A copy of the interrupted run's folder; returns its model path."""
    for path in interrupted_folder.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / "m.npz"


def test_resume_other_options_named(small_dataset, interrupted_run):
    before = checkpoint_path(interrupted_run).read_bytes()
    with pytest.raises(ValueError) as raised:
        train_lstm(dataset=str(small_dataset), saveto=str(interrupted_run), resume=True,
                   **dict(RUN, batch_size=3, optimizer="rmsprop"))
    message = str(raised.value)
    assert "batch_size=3 (checkpoint: 2)" in message
    assert "optimizer='rmsprop' (checkpoint: 'adadelta')" in message
    assert checkpoint_path(interrupted_run).read_bytes() == before


def test_resume_other_data_rejected(interrupted_run, tmp_path):
    other = write_dataset(tmp_path / "other.pkl", _reviews(random.Random(1), 48),
                          _reviews(random.Random(2), 16))
    with pytest.raises(ValueError, match="other training, validation or test reviews"):
        train_lstm(dataset=str(other), saveto=str(interrupted_run), resume=True, **RUN)


def test_resume_may_change_display_and_epochs(small_dataset, interrupted_run, reference):
    train_lstm(dataset=str(small_dataset), saveto=str(interrupted_run), resume=True,
               **dict(RUN, dispFreq=7, saveFreq=13))
    _assert_same_run(interrupted_run, reference)


# Subprocesses: the command line as a user runs it, killed from outside.

def _flags(dataset, saveto, *extra):
    flags = [f"--dataset={dataset}", f"--saveto={saveto}"]
    flags += [f"--{name}={value}" for name, value in RUN.items()]
    return flags + list(extra)


def _start(dataset, saveto, *hooks):
    command = [sys.executable, str(FAULT_RUNNER), *map(str, hooks), "--",
               *_flags(dataset, saveto)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, process):
    deadline = time.monotonic() + WAIT_SECONDS
    while not Path(path).exists():
        if process.poll() is not None:
            pytest.fail(f"training ended before {path} appeared:\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {WAIT_SECONDS} s")
        time.sleep(0.01)


def _resume_command_line(dataset, saveto):
    return subprocess.run([sys.executable, "-m", "lstm_tutorial.train",
                           *_flags(dataset, saveto, "--resume")],
                          capture_output=True, text=True, check=False)


def _temporary_files(folder):
    return sorted(path.name for path in Path(folder).iterdir() if path.name.endswith(".tmp"))


@pytest.mark.slow
def test_sigkill_during_checkpoint_write(small_dataset, reference, tmp_path):
    saveto = tmp_path / "m.npz"
    paused = tmp_path / "paused"
    process = _start(small_dataset, saveto, "--pause-checkpoint", 2, "--paused", paused)
    _wait_for(paused, process)
    assert len(_temporary_files(tmp_path)) == 1
    process.kill()
    process.wait()

    # The first checkpoint (update 25) is whole; the second was never renamed.
    assert load_checkpoint(checkpoint_path(saveto)).state["n_updates"] == 25
    resumed = _resume_command_line(small_dataset, saveto)
    assert resumed.returncode == 0, resumed.stderr
    assert "removed stale temporary file" in resumed.stderr
    assert _temporary_files(tmp_path) == []
    _assert_same_run(saveto, reference)


@pytest.mark.slow
def test_sigkill_during_training(small_dataset, reference, tmp_path):
    saveto = tmp_path / "m.npz"
    process = _start(small_dataset, saveto, "--slow-update", 0.005)
    _wait_for(checkpoint_path(saveto), process)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.6))
    process.kill()
    process.wait()

    killed_at = load_checkpoint(checkpoint_path(saveto)).state["n_updates"]
    assert 25 <= killed_at < 540
    resumed = _resume_command_line(small_dataset, saveto)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(saveto, reference)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_exit_status_then_resume(small_dataset, reference, tmp_path, signum, status):
    saveto = tmp_path / "m.npz"
    started = tmp_path / "started"
    process = _start(small_dataset, saveto, "--slow-update", 0.01, "--started", started)
    _wait_for(started, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "stopping after the current update" in stderr
    assert checkpoint_path(saveto).exists()
    assert saveto.exists()

    resumed = _resume_command_line(small_dataset, saveto)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(saveto, reference)


@pytest.mark.slow
def test_second_sigint_during_save_exits_at_once(small_dataset, tmp_path):
    saveto = tmp_path / "m.npz"
    paused = tmp_path / "paused"
    # Checkpoint 1 is the regular one at update 25; the first SIGINT causes
    # checkpoint 2, which pauses half written until the second SIGINT.
    process = _start(small_dataset, saveto, "--slow-update", 0.05, "--pause-checkpoint", 2,
                     "--paused", paused, "--pause-seconds", WAIT_SECONDS)
    _wait_for(checkpoint_path(saveto), process)
    # Let a few updates pass, so the stop does not fall on update 25 itself.
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _wait_for(paused, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "stopped at once by SIGINT" in stderr

    assert load_checkpoint(checkpoint_path(saveto)).state["n_updates"] == 25
    assert _temporary_files(tmp_path) == []


@pytest.mark.slow
def test_divergence_keeps_last_good_checkpoint(small_dataset, tmp_path):
    saveto = tmp_path / "m.npz"
    # sgd with a huge weight decay overflows the cost to inf at update 2.
    result = subprocess.run(
        [sys.executable, "-m", "lstm_tutorial.train",
         *_flags(small_dataset, saveto, "--optimizer=sgd", "--lrate=1", "--decay_c=1e30",
                 "--saveFreq=1")],
        capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "training diverged: cost is inf at update 2" in result.stderr

    checkpoint = load_checkpoint(checkpoint_path(saveto))
    assert checkpoint.state["n_updates"] == 1
    model = open_model(saveto)
    for name in PARAM_NAMES:
        assert np.isfinite(checkpoint.params[name]).all(), name
        assert np.isfinite(model[name]).all(), name
