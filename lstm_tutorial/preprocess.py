"""Turn the Large Movie Review Dataset into the tutorial's dataset files.

This is the port of the tutorial's ``imdb_preprocess.py``. For every review it
reads the first line, tokenizes it with the Moses tokenizer (sacremoses, as
``tokenizer.perl -l en -q`` does, escaping special characters so that
``<br />`` becomes ``&lt; br / &gt;``), lower-cases it and splits it on white
space. The dictionary comes from the training reviews only: words ranked by
count, most frequent first, ties in alphabetical order; the first word gets
id 2 because 0 is padding and 1 is an unknown word. Labels are pos 1, neg 0,
and each split lists all positive reviews, then all negative ones.

Run it on its own with::

    python -m lstm_tutorial.preprocess aclImdb_v1.tar.gz --output data/
"""

import argparse
import collections
import json
import logging
import multiprocessing
import os
import pickle
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from lstm_tutorial.fileio import DataError, atomic_write
from lstm_tutorial.progress import Progress
from lstm_tutorial.tokenizers import MOSES_DEFAULTS, get_tokenizer

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
# Label ids of the tutorial: pos 1, neg 0; pos reviews are listed first.
IMDB_LABELS = (("pos", 1), ("neg", 0))
TOKENIZER_SETTINGS = MOSES_DEFAULTS
# Reviews sent to a worker process at a time.
CHUNK_SIZE = 250


def _review_sort_key(name):
    # aclImdb names its files <id>_<rating>.txt; order by the numeric id.
    stem = PurePosixPath(name).stem
    head = stem.split("_", 1)[0]
    return (int(head) if head.isdigit() else float("inf"), stem)


def _first_line(data, origin):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{origin}: invalid UTF-8 at byte offset {error.start}; "
            "convert the file to UTF-8"
        ) from error
    return text.split("\n", 1)[0].strip()


def read_imdb_folder(root):
    """Read the first line of every review under an aclImdb folder.

    Returns
    -------
    dict
        ``{"train": [(text, label), ...], "test": [...]}`` with pos reviews
        (label 1) before neg reviews (label 0), each group in file-id order.
    """
    root = Path(root)
    if not (root / "train").is_dir() and (root / "aclImdb" / "train").is_dir():
        root = root / "aclImdb"
    reviews = {}
    for split in SPLITS:
        reviews[split] = []
        for label_name, label in IMDB_LABELS:
            folder = root / split / label_name
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"folder {str(folder)!r} not found; an aclImdb folder needs "
                    "train/pos, train/neg, test/pos and test/neg"
                )
            names = sorted((p.name for p in folder.glob("*.txt")), key=_review_sort_key)
            for name in names:
                path = folder / name
                reviews[split].append((_first_line(path.read_bytes(), str(path)), label))
    return reviews


def _safe_member_path(name, archive):
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(
            f"archive {str(archive)!r} holds the entry {name!r}, which points outside "
            "its folder; refusing to read it. Use an unmodified copy of the archive"
        )
    return path


def read_imdb_archive(archive):
    """Read the reviews of an aclImdb ``.tar.gz`` without extracting it.

    Entries are read straight from the archive, so nothing is written to disk
    and no entry name can escape a target folder. An entry with an absolute
    name or a ``..`` part is rejected with :class:`DataError` all the same.
    Returns the same structure as :func:`read_imdb_folder`.
    """
    archive = Path(archive)
    found = {(split, label_name): [] for split in SPLITS for label_name, _ in IMDB_LABELS}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                path = _safe_member_path(member.name, archive)
                if not member.isfile() or path.suffix != ".txt" or len(path.parts) < 3:
                    continue
                split, label_name = path.parts[-3], path.parts[-2]
                if (split, label_name) not in found:
                    continue
                data = tar.extractfile(member).read()
                text = _first_line(data, f"{archive}:{member.name}")
                found[(split, label_name)].append((path.name, text))
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise DataError(
            f"archive {str(archive)!r} is truncated or not a tar archive ({error}); "
            "download it again or pass the extracted aclImdb folder"
        ) from error

    reviews = {}
    for split in SPLITS:
        reviews[split] = []
        for label_name, label in IMDB_LABELS:
            entries = found[(split, label_name)]
            if not entries:
                raise DataError(
                    f"archive {str(archive)!r} holds no {split}/{label_name}/*.txt reviews; "
                    "pass the aclImdb_v1.tar.gz archive of the Large Movie Review Dataset"
                )
            entries.sort(key=lambda entry: _review_sort_key(entry[0]))
            reviews[split].extend((text, label) for _, text in entries)
    return reviews


def read_imdb(source):
    """Read reviews from an aclImdb folder or a ``.tar.gz`` of one."""
    source = Path(source)
    if source.is_dir():
        return read_imdb_folder(source)
    if source.is_file():
        return read_imdb_archive(source)
    raise FileNotFoundError(
        f"dataset source {str(source)!r} not found; pass an aclImdb folder or "
        "an aclImdb_v1.tar.gz archive"
    )


_worker_tokenizer = None


def _tokenize_chunk(texts):
    global _worker_tokenizer
    if _worker_tokenizer is None:
        _worker_tokenizer = get_tokenizer(TOKENIZER_SETTINGS)
    return [_worker_tokenizer(text) for text in texts]


def default_workers():
    """Number of worker processes: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def tokenize(texts, workers=None):
    """Tokenize texts as the tutorial did: Moses with escaping, then lower case.

    Returns one list of tokens per text. ``workers`` processes share the work
    (default: one per available CPU).
    """
    workers = default_workers() if workers is None else workers
    chunks = [texts[i:i + CHUNK_SIZE] for i in range(0, len(texts), CHUNK_SIZE)]
    tokens = []
    with Progress(len(texts), "tokenize", "reviews", logger) as progress:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                tokens.extend(_tokenize_chunk(chunk))
                progress.update(len(chunk))
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers) as pool:
                for result in pool.imap(_tokenize_chunk, chunks):
                    tokens.extend(result)
                    progress.update(len(result))
    return tokens


def build_dict(token_lists):
    """Rank words by count (ties alphabetically) and give the first id 2.

    Returns
    -------
    dict of str to int
    """
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {word: index + 2 for index, (word, _) in enumerate(ranked)}


def encode(token_lists, dictionary):
    """Map tokens to ids, unknown words to 1."""
    return [[dictionary.get(word, 1) for word in tokens] for tokens in token_lists]


def preprocess(source, output, *, name="imdb", workers=None):
    """Build ``<name>.pkl`` and ``<name>.dict.pkl`` in ``output`` from aclImdb reviews.

    Parameters
    ----------
    source : str or Path
        An aclImdb folder or a ``.tar.gz`` of one.
    output : str or Path
        Folder that receives the files; created when missing.
    name : str
        Stem of the output files.
    workers : int, optional
        Tokenizer processes (default: one per available CPU).

    Returns
    -------
    dict
        Summary: paths written, reviews and tokens per split, vocabulary size
        and seconds.

    Besides the two pickles in the original format this writes
    ``<name>.meta.json`` with the tokenizer settings and label names.
    """
    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)

    # Read and tokenize both splits in one pass over the worker pool.
    logger.info("preprocess source=%s", source)
    reviews = read_imdb(source)
    texts = [text for split in SPLITS for text, _ in reviews[split]]
    tokens = tokenize(texts, workers=workers)
    n_train = len(reviews["train"])
    train_tokens, test_tokens = tokens[:n_train], tokens[n_train:]

    # Dictionary from the training reviews only.
    dictionary = build_dict(train_tokens)
    train_x = encode(train_tokens, dictionary)
    test_x = encode(test_tokens, dictionary)
    train_y = [label for _, label in reviews["train"]]
    test_y = [label for _, label in reviews["test"]]

    # Write the dataset, the dictionary and the metadata atomically.
    dataset_path = output / f"{name}.pkl"
    dict_path = output / f"{name}.dict.pkl"
    meta_path = output / f"{name}.meta.json"
    with atomic_write(dataset_path) as handle:
        pickle.dump((train_x, train_y), handle, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump((test_x, test_y), handle, protocol=pickle.HIGHEST_PROTOCOL)
    with atomic_write(dict_path) as handle:
        pickle.dump(dictionary, handle, protocol=pickle.HIGHEST_PROTOCOL)
    meta = dict(TOKENIZER_SETTINGS, labels=["neg", "pos"], source=str(source))
    with atomic_write(meta_path, "w") as handle:
        json.dump(meta, handle, indent=2)

    summary = {
        "dataset": str(dataset_path),
        "dictionary": str(dict_path),
        "train_reviews": len(train_x),
        "test_reviews": len(test_x),
        "train_tokens": sum(map(len, train_x)),
        "test_tokens": sum(map(len, test_x)),
        "vocabulary": len(dictionary),
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "preprocess done train_reviews=%d test_reviews=%d train_tokens=%d test_tokens=%d "
        "vocabulary=%d seconds=%.1f",
        summary["train_reviews"], summary["test_reviews"], summary["train_tokens"],
        summary["test_tokens"], summary["vocabulary"], summary["seconds"],
    )
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.preprocess",
        description="Tokenize the Large Movie Review Dataset and write imdb.pkl and "
                    "imdb.dict.pkl in the tutorial's format.",
    )
    parser.add_argument("source", help="aclImdb folder or .tar.gz archive of one")
    parser.add_argument("--output", default=".", help="folder for the output files (default: .)")
    parser.add_argument("--name", default="imdb", help="stem of the output file names (default: imdb)")
    parser.add_argument("--workers", type=int, default=None,
                        help="tokenizer processes (default: one per available CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        summary = preprocess(args.source, args.output, name=args.name, workers=args.workers)
    except (OSError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
