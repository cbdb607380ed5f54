"""Bad files and flags given to ``python -m lstm_tutorial.train`` end in one clear error.

Each case runs the command line's ``main`` with a saved model already at
``--saveto`` and checks the exit status, that exactly one error line names
the problem, and that the model file is unchanged. A few cases also run as a
real subprocess, to check that no traceback reaches the user; others need a
user without write or read permission, or a small file system that fills up.
"""

import io
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import write_dataset
from lstm_tutorial import train as train_command
from lstm_tutorial.checkpoint import load_checkpoint
from lstm_tutorial.modelio import save_model

PREVIOUS_MODEL = b"previous model bytes"
BASE_FLAGS = ["--dim_proj=4", "--n_words=10", "--batch_size=2", "--max_epochs=1",
              "--valid_portion=0.25"]
PARAM_SHAPES = {"Wemb": (10, 4), "lstm_W": (4, 16), "lstm_U": (4, 16), "lstm_b": (16,),
                "U": (4, 2), "b": (2,)}


def _good_reviews():
    seqs = [[2 + index % 2] * (2 + index % 5) for index in range(24)]
    return seqs, [index % 2 for index in range(24)]


def _pickles(path, *objects):
    with open(path, "wb") as handle:
        for item in objects:
            pickle.dump(item, handle)
    return path


def _archive(path, names):
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            data = b"a fine film\n"
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def _model(path, **changes):
    params = {name: np.zeros(shape, "float32") for name, shape in PARAM_SHAPES.items()}
    params.update(changes)
    params = {name: value for name, value in params.items() if value is not None}
    save_model(path, params, [], {"dim_proj": 4})
    return path


def _needs_pickle(path):
    np.savez(path, **{name: np.zeros(shape, "float32") for name, shape in PARAM_SHAPES.items()},
             Wemb_note=np.array([{"code": "runs on load"}], dtype=object))
    return path


GOOD = "good.pkl"
ACL_NAMES = [f"aclImdb/{split}/{label}/1_7.txt" for split in ("train", "test")
             for label in ("pos", "neg")]

# (case id, files to create as {name: writer(path)}, extra flags, message fragment)
CASES = [
    ("dataset_missing", {}, ["--dataset", "{tmp}/absent.pkl"], "not found"),
    ("dataset_truncated", {"cut.pkl": lambda p: p.write_bytes(
        pickle.dumps(_good_reviews())[:40])}, ["--dataset", "{tmp}/cut.pkl"], "truncated"),
    ("dataset_not_pickle", {"text.pkl": lambda p: p.write_text("just some text\n")},
     ["--dataset", "{tmp}/text.pkl"], "not in the tutorial's format"),
    ("dataset_wrong_shape", {"dict.pkl": lambda p: _pickles(p, {"x": 1}, {"y": 2})},
     ["--dataset", "{tmp}/dict.pkl"], "must be a pair (x, y), found dict"),
    ("dataset_one_pickle", {"one.pkl": lambda p: _pickles(p, _good_reviews())},
     ["--dataset", "{tmp}/one.pkl"], "Ran out of input"),
    ("labels_count", {"count.pkl": lambda p: _pickles(p, ([[2], [3]], [0]), ([[2]], [0]))},
     ["--dataset", "{tmp}/count.pkl"], "has 2 sequences but 1 labels"),
    ("label_negative", {"neg.pkl": lambda p: _pickles(
        p, (_good_reviews()[0], [0, -1] * 12), ([[2]], [0]))},
     ["--dataset", "{tmp}/neg.pkl"], "negative label -1"),
    ("label_unseen", {"unseen.pkl": lambda p: _pickles(p, _good_reviews(), ([[2]], [4]))},
     ["--dataset", "{tmp}/unseen.pkl"], "label 4, which never occurs in training"),
    ("label_fraction", {"frac.pkl": lambda p: _pickles(
        p, (_good_reviews()[0], [0, 0.5] * 12), ([[2]], [0]))},
     ["--dataset", "{tmp}/frac.pkl"], "0.5 is not an integer"),
    ("word_id_text", {"text_ids.pkl": lambda p: _pickles(
        p, ([["2", "3"]] * 24, [0, 1] * 12), ([[2]], [0]))},
     ["--dataset", "{tmp}/text_ids.pkl"], "integer ids"),
    ("archive_parent_path", {"evil.tar.gz": lambda p: _archive(p, ACL_NAMES + ["../x.txt"])},
     ["--dataset", "{tmp}/evil.tar.gz"], "points outside its folder"),
    ("archive_absolute_path", {"abs.tar.gz": lambda p: _archive(p, ["/etc/x.txt"] + ACL_NAMES)},
     ["--dataset", "{tmp}/abs.tar.gz"], "points outside its folder"),
    ("archive_truncated", {"cut.tar.gz": lambda p: p.write_bytes(
        _archive(p, ACL_NAMES).read_bytes()[:60])},
     ["--dataset", "{tmp}/cut.tar.gz"], "truncated or not a tar archive"),
    ("model_not_npz", {"text.npz": lambda p: p.write_text("not a model")},
     ["--reload_model", "{tmp}/text.npz"], "is not an .npz file"),
    ("model_missing", {}, ["--reload_model", "{tmp}/absent.npz"], "not found"),
    ("model_lacks_parameter", {"lacks.npz": lambda p: _model(p, lstm_U=None)},
     ["--reload_model", "{tmp}/lacks.npz"], "has no parameter 'lstm_U'"),
    ("model_other_dim_proj", {"wide.npz": lambda p: _model(p, Wemb=np.zeros((10, 5)))},
     ["--reload_model", "{tmp}/wide.npz"], "has shape (10, 5), but the options give (10, 4)"),
    ("model_other_n_words", {"words.npz": lambda p: _model(p, Wemb=np.zeros((20, 4)))},
     ["--reload_model", "{tmp}/words.npz"], "has shape (20, 4)"),
    ("model_needs_pickle", {"pickled.npz": _needs_pickle},
     ["--reload_model", "{tmp}/pickled.npz"], "need pickle to load"),
    ("batch_size_zero", {}, ["--batch_size=0"], "batch_size=0 is invalid"),
    ("n_words_one", {}, ["--n_words=1"], "n_words=1 is invalid"),
    ("dim_proj_zero", {}, ["--dim_proj=0"], "dim_proj=0 is invalid"),
    ("patience_negative", {}, ["--patience=-1"], "patience=-1 is invalid"),
    ("dispFreq_negative", {}, ["--dispFreq=-1"], "dispFreq=-1 is invalid"),
    ("validFreq_zero", {}, ["--validFreq=0"], "validFreq=0 is invalid"),
    ("saveFreq_negative", {}, ["--saveFreq=-10"], "saveFreq=-10 is invalid"),
    ("valid_portion_zero", {}, ["--valid_portion=0"], "valid_portion=0.0 is invalid"),
    ("valid_portion_one", {}, ["--valid_portion=1"], "valid_portion=1.0 is invalid"),
    ("valid_portion_above", {}, ["--valid_portion=1.5"], "valid_portion=1.5 is invalid"),
    ("lrate_nan", {}, ["--lrate=nan"], "lrate=nan is invalid"),
    ("seed_negative", {}, ["--seed=-3"], "seed=-3 is invalid"),
    ("maxlen_one", {}, ["--maxlen=1"], "maxlen=1 is invalid"),
    ("maxlen_leaves_nothing", {}, ["--maxlen=2"], "leaves no training review"),
    ("output_folder_missing", {}, ["--saveto", "{tmp}/absent/m.npz"], "does not exist"),
    ("stale_checkpoint", {"m.npz.ckpt.npz": lambda p: p.write_bytes(b"unfinished")}, [],
     "of an unfinished run exists"),
    ("resume_damaged", {"m.npz.ckpt.npz": lambda p: p.write_bytes(b"PK\x03\x04broken")},
     ["--resume"], "checkpoint"),
]


@pytest.fixture
def workdir(tmp_path):
    write_dataset(tmp_path / GOOD, _good_reviews(), ([[2, 2], [3, 3, 3]], [0, 1]))
    (tmp_path / "m.npz").write_bytes(PREVIOUS_MODEL)
    (tmp_path / "data").mkdir()
    return tmp_path


def _argv(workdir, extra):
    argv = BASE_FLAGS + ["--dataset", str(workdir / GOOD), "--saveto", str(workdir / "m.npz"),
                         "--data_dir", str(workdir / "data")]
    return argv + [flag.replace("{tmp}", str(workdir)) for flag in extra]


@pytest.mark.parametrize("name, files, extra, fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input_one_clear_error(workdir, name, files, extra, fragment, caplog, monkeypatch):
    for file_name, writer in files.items():
        writer(workdir / file_name)
    monkeypatch.setattr(train_command, "configure_logging", lambda verbose=False: None)
    caplog.set_level("INFO")

    status = train_command.main(_argv(workdir, extra))

    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert status == 1
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: ")
    assert fragment in errors[0]
    assert "\n" not in errors[0]
    assert (workdir / "m.npz").read_bytes() == PREVIOUS_MODEL
    assert not list(workdir.glob("**/*.tmp"))
    assert not list((workdir / "data").iterdir())


@pytest.mark.parametrize("flag, value", [("--optimizer", "adam"), ("--mode", "PYTORCH"),
                                         ("--floatX", "float16"), ("--n_words", "1.5")])
def test_bad_choice_exits_with_usage(workdir, flag, value, capsys):
    with pytest.raises(SystemExit) as raised:
        train_command.main(_argv(workdir, [flag, value]))
    assert raised.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert (workdir / "m.npz").read_bytes() == PREVIOUS_MODEL


def test_float16_refused_by_function(workdir):
    from lstm_tutorial.training import train_lstm

    with pytest.raises(ValueError, match="float16 is not supported"):
        train_lstm(dataset=str(workdir / GOOD), floatX="float16")


def _run(argv, *, prefix=(), env=None, cwd=None):
    return subprocess.run([*prefix, sys.executable, "-m", "lstm_tutorial.train", *argv],
                          capture_output=True, text=True, check=False, env=env, cwd=cwd)


@pytest.mark.parametrize("name", ["dataset_truncated", "model_needs_pickle",
                                  "valid_portion_above", "stale_checkpoint"])
def test_command_prints_no_traceback(workdir, name):
    _, files, extra, fragment = next(case for case in CASES if case[0] == name)
    for file_name, writer in files.items():
        writer(workdir / file_name)
    result = _run(_argv(workdir, extra))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if " error: " in line]
    assert len(error_lines) == 1, result.stderr
    assert fragment in error_lines[0]
    assert (workdir / "m.npz").read_bytes() == PREVIOUS_MODEL


@pytest.fixture
def unprivileged(tmp_path):
    """Run the command without the right to read or write others' files.

    Root may read and write everything, so as root the command runs as user
    nobody through setpriv, in a folder under the system's temporary folder
    that nobody can enter (pytest's own folder is private to root).
    """
    if os.geteuid() != 0:
        yield tmp_path, ()
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing, so permissions are not enforced")
    command = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    probe = subprocess.run([*command, sys.executable, "-c", "import lstm_tutorial"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        # For example a pyenv Python whose libpython lies under root's home, or
        # a checkout inside a folder only root may enter (mktemp -d).
        pytest.skip(f"user nobody cannot import lstm_tutorial with {sys.executable}: "
                    f"{probe.stderr.strip()}")
    folder = Path(tempfile.mkdtemp(prefix="lstm-tutorial-perm-"))
    folder.chmod(0o777)
    try:
        yield folder, command
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged_env(folder):
    env = dict(os.environ, HOME=str(folder))
    env["PYTENSOR_FLAGS"] = f"base_compiledir={folder / 'compiledir'}"
    return env


def test_unreadable_dataset(unprivileged):
    folder, prefix = unprivileged
    dataset = write_dataset(folder / "locked.pkl", _good_reviews(), ([[2]], [0]))
    dataset.chmod(0)
    result = _run(BASE_FLAGS + ["--dataset", str(dataset), "--saveto", str(folder / "m.npz")],
                  prefix=prefix, env=_unprivileged_env(folder), cwd=folder)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot be read" in result.stderr
    assert "check its permissions" in result.stderr


def test_unwritable_output_folder(unprivileged):
    folder, prefix = unprivileged
    dataset = write_dataset(folder / "good.pkl", _good_reviews(), ([[2]], [0]))
    dataset.chmod(0o644)
    locked = folder / "locked"
    locked.mkdir()
    (locked / "m.npz").write_bytes(PREVIOUS_MODEL)
    locked.chmod(0o555)
    result = _run(BASE_FLAGS + ["--dataset", str(dataset), "--saveto", str(locked / "m.npz")],
                  prefix=prefix, env=_unprivileged_env(folder), cwd=folder)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not writable" in result.stderr
    assert (locked / "m.npz").read_bytes() == PREVIOUS_MODEL


def _can_mount_tmpfs():
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as mount_point:
        probe = subprocess.run(["unshare", "-Urm", "mount", "-t", "tmpfs", "-o", "size=64k",
                                "tmpfs", mount_point], capture_output=True, check=False)
    return probe.returncode == 0


FULL_DISK_SCRIPT = r"""
set -e
mount -t tmpfs -o size=200k tmpfs "$FOLDER"
"$PYTHON" "$RUNNER" --slow-update 0.01 -- "$@" --saveto="$FOLDER/m.npz" \
    > "$LOGS/stdout" 2> "$LOGS/stderr" &
pid=$!
while [ ! -f "$FOLDER/m.npz.ckpt.npz" ]; do sleep 0.05; done
cp "$FOLDER/m.npz.ckpt.npz" "$LOGS/first.ckpt.npz"
head -c 1000000 /dev/zero > "$FOLDER/filler" 2>/dev/null || true
status=0
wait $pid || status=$?
echo $status > "$LOGS/status"
ls -a "$FOLDER" > "$LOGS/listing"
cp "$FOLDER/m.npz.ckpt.npz" "$LOGS/after.ckpt.npz"
"""


@pytest.mark.slow
def test_full_disk_during_training(tmp_path):
    """Fill a 200 KiB tmpfs while training writes checkpoints to it.

    The tmpfs lives in a private mount namespace (``unshare -Urm``), so no
    root is needed where user namespaces are enabled, and it disappears with
    the process.
    """
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs in a user namespace here; the in-process "
                    "full-disk tests in test_resume.py still cover the write path")
    from test_resume import FAULT_RUNNER, RUN, _reviews

    dataset = write_dataset(tmp_path / "small.pkl", _reviews(random.Random(0), 48),
                            _reviews(random.Random(1), 16))
    folder, logs = tmp_path / "small_disk", tmp_path / "logs"
    folder.mkdir()
    logs.mkdir()
    flags = [f"--dataset={dataset}"] + [f"--{name}={value}" for name, value in RUN.items()]
    env = dict(os.environ, FOLDER=str(folder), LOGS=str(logs), PYTHON=sys.executable,
               RUNNER=str(FAULT_RUNNER))
    result = subprocess.run(["unshare", "-Urm", "bash", "-c", FULL_DISK_SCRIPT, "bash", *flags],
                            capture_output=True, text=True, check=False, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    stderr = (logs / "stderr").read_text()
    assert (logs / "status").read_text().strip() == "1", stderr
    assert "Traceback" not in stderr
    assert "No space left on device" in stderr
    assert "the previous file, if any, was kept" in stderr
    assert (logs / "after.ckpt.npz").read_bytes() == (logs / "first.ckpt.npz").read_bytes()
    assert load_checkpoint(logs / "after.ckpt.npz").state["n_updates"] == 25
    assert not [name for name in (logs / "listing").read_text().split() if name.endswith(".tmp")]


def test_preprocess_output_folder_not_creatable(tmp_path, capsys):
    from lstm_tutorial import preprocess

    corpus = tmp_path / "reviews.csv"
    corpus.write_text("text,label\ngood film,pos\nbad film,neg\nfine,pos\npoor,neg\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    status = preprocess.main([str(corpus), "--output", str(blocker / "out")])
    assert status != 0
    error = capsys.readouterr().err
    assert "cannot be created" in error
    assert "choose another --output" in error
    assert blocker.read_text() == "not a folder"
