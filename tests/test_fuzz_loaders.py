"""Random and mutated bytes fed to every file loader raise only the project's errors.

Each loader gets a valid file of its kind, then mutations of it (truncated,
bytes flipped, bytes inserted, a region zeroed) and plain random bytes. A
loader may accept a mutated file that is still valid; anything it raises must
be a DataError (which CheckpointError extends) or FileNotFoundError, with a
message that names the file.
"""

import gzip
import io
import json
import pickle
import random
import tarfile
from collections import OrderedDict

import numpy as np
import pytest

from lstm_tutorial.checkpoint import load_checkpoint, save_checkpoint
from lstm_tutorial.corpus import open_archive
from lstm_tutorial.data import read_dataset_file
from lstm_tutorial.fileio import DataError
from lstm_tutorial.modelio import load_params, open_model, save_model
from lstm_tutorial.vocabulary import load_dictionary, load_meta

MUTANTS_PER_LOADER = 150
PARAM_SHAPES = {"Wemb": (10, 4), "lstm_W": (4, 16), "lstm_U": (4, 16), "lstm_b": (16,),
                "U": (4, 2), "b": (2,)}


def _params(rng):
    return OrderedDict((name, rng.random(shape).astype("float32"))
                       for name, shape in PARAM_SHAPES.items())


def _valid_dataset(path):
    with open(path, "wb") as handle:
        pickle.dump(([[2, 3, 4], [5, 6], [7]], [0, 1, 0]), handle)
        pickle.dump(([[2, 9]], [1]), handle)


def _valid_gzip_dataset(path):
    buffer = io.BytesIO()
    pickle.dump(([[2, 3, 4], [5, 6]], [0, 1]), buffer)
    pickle.dump(([[2]], [1]), buffer)
    path.write_bytes(gzip.compress(buffer.getvalue()))


def _valid_dictionary(path):
    path.write_bytes(pickle.dumps({"the": 2, "movie": 3, "&apos;s": 4}))


def _valid_meta(path):
    path.write_text(json.dumps({"tokenizer": "moses", "lang": "en", "escape": True,
                                "labels": ["neg", "pos"]}))


def _valid_model(path):
    save_model(path, _params(np.random.default_rng(0)), [[0.5, 0.4], [0.3, 0.2]],
               {"dim_proj": 4, "n_words": 10}, train_err=np.float64(0.1))


def _valid_checkpoint(path):
    rng = np.random.default_rng(1)
    save_checkpoint(
        path, params=_params(rng), best_p=_params(rng),
        optimizer_state=[("Wemb_rup2", np.zeros((10, 4), "float32"))],
        history_errs=[[0.5, 0.4]], history_updates=[10], epoch_order=np.arange(6),
        state={"epoch": 1, "n_updates": 13, "batch_position": 2, "bad_counter": 0,
               "shuffle_rng": np.random.default_rng(2).bit_generator.state,
               "dropout_rng": np.random.default_rng(3).bit_generator.state,
               "options": {"dim_proj": 4}, "data_fingerprint": "0" * 64},
    )


def _valid_archive(path):
    with tarfile.open(path, "w:gz") as archive:
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                data = f"a {label} review of the {split} split\n".encode()
                member = tarfile.TarInfo(f"aclImdb/{split}/{label}/1_7.txt")
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))


def _load_params(path):
    return load_params(path, _params(np.random.default_rng(5)))


def _load_meta(path):
    # load_meta takes the dictionary's path and reads the metadata beside it.
    return load_meta(path.with_name(path.name.replace(".meta.json", ".dict.pkl")))


def _read_archive(path):
    return list(open_archive(path).examples())


LOADERS = {
    "dataset": ("data.pkl", _valid_dataset, read_dataset_file),
    "gzip_dataset": ("data.pkl.gz", _valid_gzip_dataset, read_dataset_file),
    "dictionary": ("data.dict.pkl", _valid_dictionary, load_dictionary),
    "meta": ("data.meta.json", _valid_meta, _load_meta),
    "model": ("model.npz", _valid_model, open_model),
    "model_params": ("model.npz", _valid_model, _load_params),
    "checkpoint": ("model.npz.ckpt.npz", _valid_checkpoint, load_checkpoint),
    "archive": ("aclImdb.tar.gz", _valid_archive, _read_archive),
}


def _mutate(data, rng):
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip", "insert", "zero", "random"])
    if kind == "truncate":
        return bytes(data[: rng.randrange(len(data))])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "insert":
        position = rng.randrange(len(data))
        return bytes(data[:position]) + rng.randbytes(rng.randint(1, 64)) + bytes(data[position:])
    if kind == "zero":
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.randint(1, 256))
        data[start:end] = bytes(end - start)
        return bytes(data)
    return rng.randbytes(rng.randint(0, 2048))


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_loader_fuzz_raises_project_errors(kind, tmp_path):
    name, write_valid, load = LOADERS[kind]
    valid = tmp_path / f"valid-{name}"
    write_valid(valid)
    load(valid)
    original = valid.read_bytes()

    rng = random.Random(f"fuzz-{kind}")
    path = tmp_path / name
    for round_number in range(MUTANTS_PER_LOADER):
        path.write_bytes(_mutate(original, rng))
        try:
            load(path)
        except (DataError, FileNotFoundError) as error:
            assert name in str(error), f"round {round_number}: {error}"
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{kind} round {round_number}: {type(error).__name__}: {error}")


@pytest.mark.parametrize("kind", sorted(set(LOADERS) - {"meta"}))
def test_loader_missing_file(kind, tmp_path):
    name, _, load = LOADERS[kind]
    with pytest.raises(FileNotFoundError):
        load(tmp_path / name)


def test_missing_meta_is_optional(tmp_path):
    # Dataset files from the original tutorial come without metadata.
    assert _load_meta(tmp_path / "data.meta.json") is None


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_loader_empty_file(kind, tmp_path):
    name, _, load = LOADERS[kind]
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataError):
        load(path)
