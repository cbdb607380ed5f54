"""Turn labelled text into the tutorial's dataset files.

This is the port of the tutorial's ``imdb_preprocess.py``, extended to the
corpus layouts of :mod:`lstm_tutorial.corpus` (folder trees, label folders,
CSV/TSV/JSON Lines tables, one file per label) and to other tokenizers.

For the Large Movie Review Dataset the output is the tutorial's: for every
review it reads the first line, tokenizes it with the Moses tokenizer
(sacremoses, as ``tokenizer.perl -l en -q`` does, escaping special characters
so that ``<br />`` becomes ``&lt; br / &gt;``), lower-cases it and splits it
on white space. Labels are neg 0, pos 1, and each split lists all positive
reviews, then all negative ones.

For every corpus the dictionary comes from the training examples only: words
ranked by count, most frequent first, ties in alphabetical order; the first
word gets id 2 because 0 is padding and 1 is an unknown word. Labels get ids
``0 .. ydim - 1`` in sorted order (numerically when every label is an
integer), and ``<name>.meta.json`` lists them (index = id) with the
tokenizer settings.

Texts stream through the tokenizer processes in chunks; memory keeps the
vocabulary and the id lists, not the raw text. Run it on its own with::

    python -m lstm_tutorial.preprocess aclImdb_v1.tar.gz --output data/
    python -m lstm_tutorial.preprocess reviews.csv --output data/ --test_portion 0.2
"""

import argparse
import array
import collections
import json
import logging
import multiprocessing
import os
import pickle
import re
import sys
import time
from pathlib import Path

import numpy as np

from lstm_tutorial.corpus import (ARCHIVE_SUFFIXES, FORMATS, SPLITS, _split_pair,
                                  open_corpus)
from lstm_tutorial.fileio import DataError, atomic_write, check_output_folder
from lstm_tutorial.progress import Progress
from lstm_tutorial.tokenizers import (MOSES_DEFAULTS, TOKENIZERS, get_tokenizer,
                                      tokenizer_settings)

logger = logging.getLogger(__name__)

TOKENIZER_SETTINGS = MOSES_DEFAULTS
# Texts sent to a worker process at a time.
CHUNK_SIZE = 250
# Chunks queued per worker, enough to keep workers busy while bounding memory.
CHUNKS_IN_FLIGHT_PER_WORKER = 4
# Below this size a corpus is tokenized in this process unless workers is set:
# starting worker processes takes longer than tokenizing it.
SMALL_CORPUS_BYTES = 1 << 20
DEFAULT_TEST_PORTION = 0.2
DEFAULT_SEED = 1234


# ---------------------------------------------------------------- tokenizing

_worker_tokenizer = None


def _init_worker(settings):
    global _worker_tokenizer
    _worker_tokenizer = get_tokenizer(settings)


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


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tokenize_stream(chunks, settings=None, workers=None):
    """Tokenize chunks of texts in order, in worker processes.

    Parameters
    ----------
    chunks : iterable of (object, list of str)
        ``(payload, texts)`` pairs; the payload travels with the result.
    settings : dict, optional
        Tokenizer settings for :func:`get_tokenizer`; Moses as in the tutorial
        when None.
    workers : int, optional
        Processes (default: one per available CPU). With 1 the work runs here.

    Yields
    ------
    payload, list of list of str
        The tokens of each text. At most ``workers * 4`` chunks wait in the
        queue, so memory does not grow with the input.
    """
    settings = settings or TOKENIZER_SETTINGS
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        tokenizer = get_tokenizer(settings)
        for payload, texts in chunks:
            yield payload, [tokenizer(text) for text in texts]
        return
    # Fail here, with the real message, when the tokenizer cannot be built.
    get_tokenizer(settings)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        pending = collections.deque()
        for payload, texts in chunks:
            pending.append((payload, pool.apply_async(_tokenize_chunk, (texts,))))
            if len(pending) >= workers * CHUNKS_IN_FLIGHT_PER_WORKER:
                payload, result = pending.popleft()
                yield payload, result.get()
        while pending:
            payload, result = pending.popleft()
            yield payload, result.get()


def tokenize(texts, workers=None, settings=None):
    """Tokenize texts, by default as the tutorial did: Moses with escaping, then lower case.

    Returns one list of tokens per text. ``workers`` processes share the work
    (default: one per available CPU).
    """
    chunks = ((None, texts[i:i + CHUNK_SIZE]) for i in range(0, len(texts), CHUNK_SIZE))
    tokens = []
    for _, chunk_tokens in tokenize_stream(chunks, settings, workers):
        tokens.extend(chunk_tokens)
    return tokens


# ---------------------------------------------------------------- dictionary

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


def order_labels(names):
    """Return label names in id order: numerically when all are integers, else sorted.

    >>> order_labels(["pos", "neg"])
    ['neg', 'pos']
    >>> order_labels(["10", "2", "-1"])
    ['-1', '2', '10']
    """
    names = sorted(set(names))
    if all(re.fullmatch(r"[+-]?\d+", name) for name in names):
        return sorted(names, key=int)
    return names


def read_imdb(source):
    """Read the reviews of an aclImdb folder or archive into memory.

    Returns
    -------
    dict
        ``{"train": [(text, label), ...], "test": [...]}`` with pos reviews
        (label 1) before neg reviews (label 0), each group in file-id order.
    """
    corpus = open_corpus(source, "tree")
    if not corpus.imdb_layout:
        raise DataError(f"{source!s} is not an aclImdb tree with neg and pos labels; use "
                        "preprocess() for other corpora")
    reviews = {split: [] for split in SPLITS}
    for example in corpus.examples():
        label = 1 if example.label == "pos" else 0
        reviews[example.split].append((1 - label, example.order, example.text, label))
    return {split: [(text, label) for *_, text, label in sorted(items, key=lambda r: r[:2])]
            for split, items in reviews.items()}


# ---------------------------------------------------------------- streaming

class _TokenizedCorpus:
    """Examples as arrays of provisional word ids, in the order they arrived.

    Words get provisional ids as they first appear; the final ids (ranked by
    count over the training split only) are known once everything is read.
    """

    def __init__(self):
        self.word_ids = {}
        self.words = []
        self.label_names = []
        self.label_index = {}
        self.splits = []
        self.labels = []
        self.orders = []
        self.ids = []
        self.empty = 0

    def add(self, example, tokens):
        if not tokens:
            self.empty += 1
            return
        word_ids = self.word_ids
        ids = array.array("i")
        for token in tokens:
            index = word_ids.get(token)
            if index is None:
                index = word_ids[token] = len(self.words)
                self.words.append(token)
            ids.append(index)
        label = self.label_index.get(example.label)
        if label is None:
            label = self.label_index[example.label] = len(self.label_names)
            self.label_names.append(example.label)
        self.splits.append(example.split)
        self.labels.append(label)
        self.orders.append(example.order)
        self.ids.append(ids)


def _read_and_tokenize(corpus, settings, workers):
    if workers is None and corpus.total_bytes < SMALL_CORPUS_BYTES:
        workers = 1
    tokenized = _TokenizedCorpus()
    empty_before_tokenizing = 0

    def non_empty_chunks(progress):
        nonlocal empty_before_tokenizing
        for chunk in _chunks(corpus.examples(), CHUNK_SIZE):
            progress.update(sum(example.nbytes for example in chunk) / 1e6)
            kept = [example for example in chunk if example.text]
            empty_before_tokenizing += len(chunk) - len(kept)
            if kept:
                yield kept, [example.text for example in kept]

    with Progress(corpus.total_bytes / 1e6, "preprocess", "MB", logger) as progress:
        for examples, tokens in tokenize_stream(non_empty_chunks(progress), settings, workers):
            for example, example_tokens in zip(examples, tokens):
                tokenized.add(example, example_tokens)
    tokenized.empty += empty_before_tokenizing
    return tokenized


def _draw_test_split(labels, n_classes, portion, seed):
    """Return a boolean mask of test examples: ``portion`` of each class, at random."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in range(n_classes):
        members = np.flatnonzero(labels == label)
        n_test = int(round(len(members) * portion))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        else:
            n_test = 0
        is_test[rng.permutation(members)[:n_test]] = True
    return is_test


def _assign_splits(tokenized, corpus, label_names, test_portion, seed):
    """Return ``{"train": indices, "test": indices}`` in the output order."""
    rank = {name: index for index, name in enumerate(label_names)}
    labels = np.array([rank[tokenized.label_names[label]] for label in tokenized.labels],
                      dtype="int64")
    has_test = any(split == "test" for split in tokenized.splits)
    if has_test:
        is_test = np.array([split == "test" for split in tokenized.splits], dtype=bool)
    else:
        if corpus.has_test_split:
            logger.warning("corpus test split is empty; drawing test_portion=%s of the "
                           "training examples", test_portion)
        is_test = _draw_test_split(labels, len(label_names), test_portion, seed)

    order = {}
    for split, mask in (("train", ~is_test), ("test", is_test)):
        indices = np.flatnonzero(mask).tolist()
        if corpus.grouped_by_label:
            # Folder layouts list a split label by label, pos first for aclImdb.
            group = (lambda i: -labels[i]) if corpus.imdb_layout else (lambda i: labels[i])
            indices.sort(key=lambda i: (group(i), tokenized.orders[i]))
        order[split] = indices
    return labels, order


def _check_labels(labels, order, label_names, corpus):
    sources = ", ".join(map(str, corpus.sources))
    if len(label_names) < 2:
        found = f"only the label {label_names[0]!r}" if label_names else "no examples"
        raise DataError(f"corpus {sources} has {found}; a classifier needs at least two "
                        "classes. Check the label column, folders or files")
    train_labels = set(labels[order["train"]].tolist())
    missing = [label_names[label] for label in sorted(set(labels[order["test"]].tolist())
                                                       - train_labels)]
    if missing:
        raise DataError(f"corpus {sources}: label {missing[0]!r} appears in the test split "
                        "but never in the training split; every class needs training examples")
    if not order["test"]:
        raise DataError(f"corpus {sources}: the test split is empty; raise --test_portion or "
                        "add examples (each class needs at least two to be split)")


def _final_ids(tokenized, train_indices):
    """Rank the words of the training split and map provisional ids to final ones."""
    counts = np.zeros(len(tokenized.words), dtype="int64")
    for chunk in _chunks(train_indices, 10000):
        ids = np.concatenate([np.frombuffer(tokenized.ids[i], dtype=np.int32) for i in chunk])
        counts += np.bincount(ids, minlength=len(tokenized.words))
    seen = np.flatnonzero(counts)
    ranked = sorted(seen.tolist(), key=lambda index: (-counts[index], tokenized.words[index]))
    remap = np.ones(len(tokenized.words), dtype="int64")
    remap[ranked] = np.arange(2, 2 + len(ranked))
    dictionary = {tokenized.words[index]: int(remap[index]) for index in ranked}
    return dictionary, remap


def _encode_split(tokenized, indices, remap, labels):
    # Shared int objects keep each id list at one pointer per token.
    int_objects = list(range(int(remap.max(initial=1)) + 1))
    lookup = int_objects.__getitem__
    x = []
    for i in indices:
        x.append(list(map(lookup, remap[np.frombuffer(tokenized.ids[i], dtype=np.int32)]
                          .tolist())))
        # Each provisional array is freed once encoded, so both never coexist in full.
        tokenized.ids[i] = None
    y = [int_objects[int(labels[i])] for i in indices]
    return x, y


# ---------------------------------------------------------------- main step

def _default_name(corpus, sources):
    if corpus.imdb_layout:
        return "imdb"
    first = Path(_split_pair(sources[0])[1])
    name = first.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    if corpus.data_format == "lines" and first.is_file():
        return first.stem
    stem = first.stem if first.is_file() else name
    # train.csv and test.csv are named after their folder, news_train.csv after "news".
    return re.sub(r"[_.-]?(train|test)$", "", stem) or first.resolve().parent.name or stem


def preprocess(source, output, *, name=None, workers=None, data_format=None, tokenizer=None,
               encoding="utf-8", errors="strict", text_column=None, label_column=None,
               test_portion=DEFAULT_TEST_PORTION, seed=DEFAULT_SEED):
    """Build ``<name>.pkl``, ``<name>.dict.pkl`` and ``<name>.meta.json`` in ``output``.

    Parameters
    ----------
    source : str, Path or list of them
        A corpus in a layout of :mod:`lstm_tutorial.corpus`: an aclImdb or
        other folder tree (or a ``.tar.gz`` of one), a folder of label
        folders, a CSV/TSV/JSON Lines file or train/test pair, or one file per
        label (``name.LABEL`` or ``LABEL=PATH``).
    output : str or Path
        Folder that receives the files; created when missing.
    name : str, optional
        Stem of the output files: ``imdb`` for an aclImdb tree, else the
        source's name.
    workers : int, optional
        Tokenizer processes (default: one per available CPU).
    data_format : str, optional
        Layout, one of tree, folders, csv, tsv, jsonl, lines; detected from
        the path when None.
    tokenizer : str or dict, optional
        Tokenizer name (moses, whitespace, japanese) or complete settings;
        the tutorial's Moses settings when None.
    encoding : str
        Text encoding of the files.
    errors : str
        ``strict`` raises on bytes that do not decode; ``replace`` or
        ``ignore`` substitute or drop them.
    text_column, label_column : str, optional
        Column names of a table; common names are tried when None.
    test_portion : float
        Share of each class drawn at random as the test split when the
        corpus has no test split.
    seed : int
        Seed of that draw.

    Returns
    -------
    dict
        Summary: paths written, examples and tokens per split, examples per
        label, empty texts skipped, vocabulary size and seconds.

    Raises
    ------
    DataError
        For a file that does not decode, a malformed table, a corpus with one
        class or a label found only in the test split.
    """
    start = time.perf_counter()
    if not 0.0 < test_portion < 1.0:
        raise ValueError(f"test_portion={test_portion!r} must lie strictly between 0 and 1")
    if tokenizer is None or isinstance(tokenizer, str):
        settings = tokenizer_settings(tokenizer or "moses")
    else:
        settings = tokenizer_settings(tokenizer.get("tokenizer", "moses"),
                                      **{k: v for k, v in tokenizer.items() if k != "tokenizer"})
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    corpus = open_corpus(sources, data_format, encoding=encoding, errors=errors,
                         text_column=text_column, label_column=label_column)
    name = name or _default_name(corpus, [str(s) for s in sources])
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(error.errno, f"output folder {str(output)!r} cannot be created "
                                   f"({error.strerror}); choose another --output") from error
    # Fail before the long tokenization when the files could not be written.
    check_output_folder(output / f"{name}.pkl")

    # Read and tokenize, streaming the texts through the worker pool.
    logger.info("preprocess source=%s tokenizer=%s", " ".join(map(str, sources)),
                settings["tokenizer"])
    tokenized = _read_and_tokenize(corpus, settings, workers)

    # Label ids, the train/test split, and the dictionary from training examples only.
    label_names = order_labels(tokenized.label_names)
    labels, order = _assign_splits(tokenized, corpus, label_names, test_portion, seed)
    _check_labels(labels, order, label_names, corpus)
    dictionary, remap = _final_ids(tokenized, order["train"])
    train_x, train_y = _encode_split(tokenized, order["train"], remap, labels)
    test_x, test_y = _encode_split(tokenized, order["test"], remap, labels)
    empty_texts = tokenized.empty
    test_split = "given" if any(split == "test" for split in tokenized.splits) else "drawn"
    del tokenized

    # Write the dictionary, the metadata and then the dataset, each atomically.
    # The dataset comes last because its presence marks a complete cache entry.
    dataset_path = output / f"{name}.pkl"
    dict_path = output / f"{name}.dict.pkl"
    meta_path = output / f"{name}.meta.json"
    with atomic_write(dict_path) as handle:
        pickle.dump(dictionary, handle, protocol=pickle.HIGHEST_PROTOCOL)
    label_counts = {split: dict(zip(label_names, np.bincount(y, minlength=len(label_names))
                                    .tolist()))
                    for split, y in (("train", train_y), ("test", test_y))}
    meta = dict(settings, labels=label_names,
                source=" ".join(map(str, sources)),
                corpus={"format": corpus.data_format, "encoding": encoding, "errors": errors,
                        "text_column": text_column, "label_column": label_column,
                        "test_split": test_split,
                        "test_portion": test_portion, "seed": seed},
                label_counts=label_counts)
    with atomic_write(meta_path, "w") as handle:
        json.dump(meta, handle, indent=2, ensure_ascii=False)
    with atomic_write(dataset_path) as handle:
        pickle.dump((train_x, train_y), handle, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump((test_x, test_y), handle, protocol=pickle.HIGHEST_PROTOCOL)

    summary = {
        "dataset": str(dataset_path),
        "dictionary": str(dict_path),
        "meta": str(meta_path),
        "format": corpus.data_format,
        "tokenizer": settings["tokenizer"],
        "labels": label_names,
        "label_counts": label_counts,
        "train_reviews": len(train_x),
        "test_reviews": len(test_x),
        "train_tokens": sum(map(len, train_x)),
        "test_tokens": sum(map(len, test_x)),
        "empty_texts": empty_texts,
        "vocabulary": len(dictionary),
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "preprocess done train_reviews=%d test_reviews=%d train_tokens=%d test_tokens=%d "
        "vocabulary=%d labels=%d empty_texts=%d seconds=%.1f",
        summary["train_reviews"], summary["test_reviews"], summary["train_tokens"],
        summary["test_tokens"], summary["vocabulary"], len(label_names),
        summary["empty_texts"], summary["seconds"],
    )
    return summary


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.preprocess",
        description="Tokenize a labelled corpus (the Large Movie Review Dataset or your own) "
                    "and write NAME.pkl, NAME.dict.pkl and NAME.meta.json in the tutorial's "
                    "format.",
    )
    parser.add_argument("source", nargs="+",
                        help="aclImdb or other folder tree or .tar.gz of one; a folder of "
                             "label folders; a .csv/.tsv/.jsonl file or a train/test pair; "
                             "or one file per label (name.LABEL or LABEL=PATH)")
    parser.add_argument("--output", default=".", help="folder for the output files (default: .)")
    parser.add_argument("--name", default=None,
                        help="stem of the output file names (default: imdb for an aclImdb "
                             "tree, else the source's name)")
    parser.add_argument("--format", dest="data_format", choices=FORMATS, default=None,
                        help="corpus layout (default: detected from the path)")
    parser.add_argument("--encoding", default="utf-8",
                        help="text encoding of the files, a Python codec name such as "
                             "latin-1, cp1252 or shift_jis (default: utf-8)")
    parser.add_argument("--errors", default="strict", choices=("strict", "replace", "ignore"),
                        help="what to do with bytes that do not decode: stop with an error, "
                             "replace them with U+FFFD, or drop them (default: strict)")
    parser.add_argument("--text_column", "--text-column", default=None,
                        help="text column of a CSV/TSV/JSON Lines file (default: the first "
                             "of text, sentence, review, content, ... in the header)")
    parser.add_argument("--label_column", "--label-column", default=None,
                        help="label column of a CSV/TSV/JSON Lines file (default: the first "
                             "of label, labels, sentiment, class, ... in the header)")
    parser.add_argument("--test_portion", "--test-portion", type=float,
                        default=DEFAULT_TEST_PORTION,
                        help="share of each class drawn as the test split when the corpus "
                             f"has none (default: {DEFAULT_TEST_PORTION})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the test split draw (default: {DEFAULT_SEED})")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="moses",
                        help="moses (the tutorial's), whitespace (text already tokenized) or "
                             "japanese (SudachiPy; pip install 'lstm-tutorial[ja]') "
                             "(default: moses)")
    parser.add_argument("--lang", default=None,
                        help="language of the moses tokenizer, an ISO 639-1 code (default: en)")
    parser.add_argument("--split_mode", "--split-mode", choices=("A", "B", "C"), default=None,
                        help="unit length of the japanese tokenizer: A short, B middle, C long "
                             "(default: C)")
    parser.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True,
                        help="lower-case the tokens (default: on)")
    parser.add_argument("--workers", type=int, default=None,
                        help="tokenizer processes (default: one per available CPU)")
    return parser


def _tokenizer_from_args(args):
    overrides = {"lowercase": args.lowercase}
    if args.lang is not None:
        if args.tokenizer != "moses":
            raise ValueError("--lang applies to the moses tokenizer only")
        overrides["lang"] = args.lang
    if args.split_mode is not None:
        if args.tokenizer != "japanese":
            raise ValueError("--split_mode applies to the japanese tokenizer only")
        overrides["split_mode"] = args.split_mode
    return tokenizer_settings(args.tokenizer, **overrides)


def _remove_empty_folder(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    output_existed = Path(args.output).exists()
    try:
        summary = preprocess(
            args.source, args.output, name=args.name, workers=args.workers,
            data_format=args.data_format, tokenizer=_tokenizer_from_args(args),
            encoding=args.encoding, errors=args.errors, text_column=args.text_column,
            label_column=args.label_column, test_portion=args.test_portion, seed=args.seed)
    except (OSError, ValueError, ImportError, KeyboardInterrupt) as error:
        if not output_existed:
            _remove_empty_folder(Path(args.output))
        if isinstance(error, KeyboardInterrupt):
            print("error: interrupted; no output file was written", file=sys.stderr)
            return 130
        # Some errors (tarfile's) span several lines; keep the message on one.
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
