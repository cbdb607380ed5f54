"""Read labelled text in the layouts users keep it in, one example at a time.

Layouts (``data_format``), detected from the source path unless given:

``tree``
    ``ROOT/{train,test}/LABEL/*`` text files, one example per file, any label
    names; the aclImdb folder is one case, and so is a ``.tar.gz`` of such a
    tree. Without ``ROOT/test`` a test split is drawn later. A label folder
    named ``unsup`` (aclImdb's unlabelled reviews) is skipped. A tree whose
    labels are exactly ``neg`` and ``pos`` is read as the tutorial read
    aclImdb, the first line of each file only; other trees read whole files.
``folders``
    ``ROOT/LABEL/*`` text files without splits.
``csv``, ``tsv``, ``jsonl``
    A table with a header row (JSON Lines: one object per line) holding a
    text column and a label column. One file, or a train/test pair.
``lines``
    One plain-text file per label with one example per line: files named
    ``name.LABEL`` (``rt-polarity.pos``), or ``LABEL.txt``, or given as
    ``LABEL=PATH``.

Files are decoded with ``encoding`` (UTF-8 by default, a byte-order mark is
dropped). Bytes that do not decode raise :class:`DataError` naming the file
and byte offset, unless ``errors="replace"``.
"""

import csv
import json
import logging
import sys
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lstm_tutorial.fileio import DataError

logger = logging.getLogger(__name__)

FORMATS = ("tree", "folders", "csv", "tsv", "jsonl", "lines")
SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl", ".json": "jsonl"}
# Column names tried, in order, when --text_column / --label_column are not given.
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "comment", "body")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "category", "target", "polarity")
# aclImdb's folder of unlabelled reviews.
SKIPPED_LABEL_FOLDERS = ("unsup",)
# Encodings whose line breaks are not the single byte 0x0A cannot be read line by line.
_WIDE_ENCODINGS = ("utf-16", "utf16", "utf-32", "utf32", "utf_16", "utf_32")
ENCODING_HINT = ("run python -m lstm_tutorial.preprocess with --encoding and the file's "
                 "encoding (for example --encoding latin-1, cp1252 or shift_jis), or with "
                 "--errors replace to replace the bytes that do not decode")


@dataclass
class Example:
    """One labelled text, with the key that orders it inside its split."""

    split: str  # "train", "test" or None when the corpus has no split
    label: str
    text: str
    order: tuple
    nbytes: int


@dataclass
class Corpus:
    """A labelled corpus ready to be streamed by :meth:`examples`."""

    data_format: str
    sources: list
    examples: object  # a function returning an iterator of Example
    total_bytes: int
    # Examples of a split are listed label by label (folder layouts) rather
    # than in file order (tables and line files).
    grouped_by_label: bool
    has_test_split: bool
    # A tree whose labels are exactly neg and pos (aclImdb) keeps the
    # tutorial's rules: only the first line of a file is read, and each split
    # lists pos before neg.
    imdb_layout: bool = False


# ---------------------------------------------------------------- decoding

def check_encoding(encoding, errors="strict"):
    """Raise ``ValueError`` for an unknown codec or error handler."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise ValueError(f"encoding {encoding!r} is unknown; pass a Python codec name such as "
                         "utf-8, latin-1, cp1252 or shift_jis") from error
    if encoding.lower().replace("-", "_").startswith(_WIDE_ENCODINGS):
        raise ValueError(f"encoding {encoding!r} is not supported because its line breaks are "
                         "not single bytes; convert the files to UTF-8 first (for example with "
                         f"iconv -f {encoding} -t utf-8)")
    if errors not in ("strict", "replace", "ignore"):
        raise ValueError(f"errors={errors!r} is invalid; choose strict, replace or ignore")


def decode(data, origin, encoding="utf-8", errors="strict", offset=0):
    """Decode bytes, naming ``origin`` and the absolute byte offset on failure."""
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{origin}: the bytes at byte offset {offset + error.start} are not valid "
            f"{encoding} ({error.reason}); {ENCODING_HINT}"
        ) from error
    return text


def decoded_lines(path, encoding="utf-8", errors="strict"):
    """Yield ``(line_number, text)`` for each line of a file, line ends kept.

    Only one line is held in memory. The first line loses a byte-order mark.
    """
    offset = 0
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            text = decode(raw, str(path), encoding, errors, offset)
            if line_number == 1:
                text = text.lstrip("\ufeff")
            offset += len(raw)
            yield line_number, text


def _file_text(data, origin, encoding, errors, first_line=False):
    text = decode(data, origin, encoding, errors).lstrip("\ufeff")
    if first_line:
        text = text.split("\n", 1)[0]
    return text.strip()


def _is_imdb_labels(labels):
    return set(labels) == {"neg", "pos"}


# ---------------------------------------------------------------- detection

def _has_suffix(path, suffixes):
    return any(str(path).lower().endswith(suffix) for suffix in suffixes)


def _visible_files(folder):
    return sorted(path for path in folder.iterdir() if path.is_file()
                  and not path.name.startswith("."))


def _tree_root(root):
    # An aclImdb archive unpacks to a folder that contains aclImdb/.
    if not (root / "train").is_dir():
        children = [child for child in root.iterdir() if child.is_dir()
                    and not child.name.startswith(".")]
        if len(children) == 1 and (children[0] / "train").is_dir():
            return children[0]
    return root


def _table_pair(folder):
    """Return ``{"train": path, "test": path}`` for ``train.csv``-style files in ``folder``."""
    pair = {}
    for path in _visible_files(folder):
        stem = path.name.lower()
        kind = next((suffix for suffix in TABLE_SUFFIXES if stem.endswith(suffix)), None)
        if kind is None:
            continue
        stem = stem[: -len(kind)]
        for split in SPLITS:
            if stem == split or stem.endswith(("_" + split, "-" + split, "." + split)):
                pair.setdefault(split, path)
    return pair


def detect_format(sources):
    """Return the layout of ``sources`` (a list of paths or ``LABEL=PATH`` strings).

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    DataError
        When the paths do not determine the layout; pass ``data_format``.
    """
    pairs = [source for source in sources if _split_pair(source)[0] is not None]
    paths = [Path(_split_pair(source)[1]) for source in sources]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"corpus source {str(path)!r} not found; check the path")
    if len(paths) == 1 and paths[0].is_dir():
        root = paths[0]
        if (_tree_root(root) / "train").is_dir():
            return "tree"
        pair = _table_pair(root)
        if "train" in pair:
            return TABLE_SUFFIXES[next(s for s in TABLE_SUFFIXES
                                       if pair["train"].name.lower().endswith(s))]
        files = _visible_files(root)
        if len(files) == 1 and files[0].suffix.lower() in TABLE_SUFFIXES:
            return TABLE_SUFFIXES[files[0].suffix.lower()]
        if any(child.is_dir() and not child.name.startswith(".") for child in root.iterdir()):
            return "folders"
        if _visible_files(root):
            return "lines"
        raise DataError(f"folder {str(root)!r} is empty; it needs label folders, "
                        "train/test folders or one text file per label")
    if len(paths) == 1 and _has_suffix(paths[0], ARCHIVE_SUFFIXES):
        return "tree"
    kinds = {TABLE_SUFFIXES.get(path.suffix.lower()) for path in paths}
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop()
    if any(path.is_dir() for path in paths):
        raise DataError(f"sources {', '.join(map(str, sources))} mix folders and files; "
                        "pass one folder, or files of one layout")
    if pairs and len(pairs) != len(sources):
        raise DataError("give every file as LABEL=PATH, or none of them; mixed sources: "
                        f"{', '.join(map(str, sources))}")
    return "lines"


def _split_pair(source):
    """Split ``"LABEL=PATH"`` into ``(LABEL, PATH)``; ``(None, source)`` otherwise."""
    text = str(source)
    if "=" in text and not Path(text).exists():
        key, _, path = text.partition("=")
        if key and path:
            return key, path
    return None, text


# ---------------------------------------------------------------- layouts

def _review_sort_key(name):
    # aclImdb names its files <id>_<rating>.txt; order by the numeric id, then by name.
    stem = PurePosixPath(name).stem
    head = stem.split("_", 1)[0]
    return (int(head) if head.isdigit() else float("inf"), stem)


def _label_folders(folder):
    return sorted(child for child in folder.iterdir() if child.is_dir()
                  and not child.name.startswith(".")
                  and child.name not in SKIPPED_LABEL_FOLDERS)


def _folder_examples(folders, encoding, errors, first_line):
    """Yield one Example per file of ``(split, label, folder)`` triples."""
    for split, label, folder in folders:
        for path in _visible_files(folder):
            data = path.read_bytes()
            text = _file_text(data, str(path), encoding, errors, first_line)
            yield Example(split, label, text, _review_sort_key(path.name), len(data))


def open_tree(root, encoding="utf-8", errors="strict"):
    """Open a ``ROOT/{train,test}/LABEL/*`` folder tree (aclImdb is one)."""
    root = _tree_root(Path(root))
    folders = []
    for split in SPLITS:
        split_folder = root / split
        if not split_folder.is_dir():
            continue
        labels = _label_folders(split_folder)
        if not labels:
            raise DataError(f"folder {str(split_folder)!r} contains no label folders; the tree "
                            f"layout is {root}/train/LABEL/*.txt and {root}/test/LABEL/*.txt")
        folders.extend((split, folder.name, folder) for folder in labels)
    if not folders:
        raise DataError(f"folder {str(root)!r} has no train/ folder; pass a folder with "
                        "train/LABEL/*.txt (and test/LABEL/*.txt) or choose another --format")
    total = sum(path.stat().st_size for _, _, folder in folders
                for path in _visible_files(folder))
    imdb = _is_imdb_labels(label for _, label, _ in folders)
    return Corpus("tree", [root], lambda: _folder_examples(folders, encoding, errors, imdb),
                  total, grouped_by_label=True, has_test_split=(root / "test").is_dir(),
                  imdb_layout=imdb)


def open_folders(root, encoding="utf-8", errors="strict"):
    """Open a ``ROOT/LABEL/*`` folder of label folders without splits."""
    root = Path(root)
    folders = [(None, folder.name, folder) for folder in _label_folders(root)]
    if not folders:
        raise DataError(f"folder {str(root)!r} contains no label folders; the folders layout is "
                        f"{root}/LABEL/*.txt with one folder per label")
    total = sum(path.stat().st_size for _, _, folder in folders
                for path in _visible_files(folder))
    return Corpus("folders", [root], lambda: _folder_examples(folders, encoding, errors, False),
                  total, grouped_by_label=True, has_test_split=False)


def _safe_member_path(name, archive):
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(
            f"archive {str(archive)!r} contains the entry {name!r}, which points outside "
            "its folder, so it was rejected. Use an unmodified copy of the archive"
        )
    return path


def _archive_entry(member, archive):
    """Return ``(split, label)`` of a review entry of a tree archive, or None."""
    path = _safe_member_path(member.name, archive)
    if not member.isfile() or len(path.parts) < 3 or path.name.startswith("."):
        return None
    split, label = path.parts[-3], path.parts[-2]
    if split not in SPLITS or label in SKIPPED_LABEL_FOLDERS:
        return None
    return split, label


def _archive_error(archive, error):
    return DataError(
        f"archive {str(archive)!r} is truncated or not a tar archive ({error}); "
        "download it again or pass the extracted folder"
    )


def _scan_archive(archive):
    """List the ``(split, label)`` of every entry and the total size, reading headers only."""
    entries, total = set(), 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                entry = _archive_entry(member, archive)
                if entry is not None:
                    entries.add(entry)
                    total += member.size
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _archive_error(archive, error) from error
    if not entries:
        raise DataError(f"archive {str(archive)!r} contains no train/LABEL/* or test/LABEL/* "
                        "files; pack a folder tree ROOT/train/LABEL/*.txt, or extract it and "
                        "pass the folder")
    return entries, total


def _archive_examples(archive, encoding, errors, first_line):
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                entry = _archive_entry(member, archive)
                if entry is None:
                    continue
                data = tar.extractfile(member).read()
                text = _file_text(data, f"{archive}:{member.name}", encoding, errors, first_line)
                name = PurePosixPath(member.name).name
                yield Example(entry[0], entry[1], text, _review_sort_key(name), member.size)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _archive_error(archive, error) from error


def open_archive(archive, encoding="utf-8", errors="strict"):
    """Open a tar archive of a folder tree, read entry by entry without extracting.

    A first pass reads the entry headers (the labels and splits), so a
    compressed archive is decompressed twice.
    """
    archive = Path(archive)
    entries, total = _scan_archive(archive)
    imdb = _is_imdb_labels(label for _, label in entries)
    has_test = any(split == "test" for split, _ in entries)
    return Corpus("tree", [archive], lambda: _archive_examples(archive, encoding, errors, imdb),
                  total, grouped_by_label=True, has_test_split=has_test, imdb_layout=imdb)


def _choose_column(header, requested, candidates, role, path, flag):
    if requested is not None:
        if requested in header:
            return header.index(requested)
        raise DataError(f"{path}: no column named {requested!r} for the {role}; the header has "
                        f"{', '.join(map(repr, header))}. Pass {flag} with one of those names to "
                        "python -m lstm_tutorial.preprocess")
    lowered = [str(name).strip().lower() for name in header]
    for candidate in candidates:
        if candidate in lowered:
            return lowered.index(candidate)
    raise DataError(f"{path}: no {role} column found in the header "
                    f"({', '.join(map(repr, header))}); pass {flag} with its name to "
                    "python -m lstm_tutorial.preprocess")


def _table_rows(path, delimiter, encoding, errors, text_column, label_column):
    csv.field_size_limit(sys.maxsize)
    lines = decoded_lines(path, encoding, errors)
    reader = csv.reader((text for _, text in lines), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path} is empty; a table needs a header row and one row per "
                        "example") from None
    header = [name.strip() for name in header]
    text_index = _choose_column(header, text_column, TEXT_COLUMNS, "text", path,
                                "--text_column")
    label_index = _choose_column(header, label_column, LABEL_COLUMNS, "label", path,
                                 "--label_column")
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) <= max(text_index, label_index):
                raise DataError(
                    f"{path}, line {reader.line_num}: the row has {len(row)} field(s) but the "
                    f"header has {len(header)}; check the delimiter and the quoting"
                )
            yield reader.line_num, row[label_index], row[text_index]
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: {error}; check the quoting, or pass "
                        "--format tsv or csv to choose the delimiter") from error


def _json_array_lines(path, encoding, errors):
    """Yield ``(index, json_text)`` for the objects of a file holding one JSON array."""
    # NOTE: a JSON array is parsed whole, so its memory grows with the file;
    # JSON Lines (one object per line) streams.
    text = "".join(line for _, line in decoded_lines(path, encoding, errors))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: invalid JSON ({error.msg})") from error
    for index, record in enumerate(records, start=1):
        yield index, json.dumps(record)


def _starts_with_array(path, encoding, errors):
    for _, line in decoded_lines(path, encoding, errors):
        if line.strip():
            return line.lstrip().startswith("[")
    return False


def _jsonl_rows(path, encoding, errors, text_column, label_column):
    columns = None
    if _starts_with_array(path, encoding, errors):
        lines = _json_array_lines(path, encoding, errors)
    else:
        lines = decoded_lines(path, encoding, errors)
    for line_number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {line_number}: invalid JSON ({error.msg}); JSON "
                            "Lines needs one JSON object per line") from error
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line_number}: expected a JSON object with a text "
                            f"and a label field, found {type(record).__name__}")
        if columns is None:
            header = list(record)
            columns = (header[_choose_column(header, text_column, TEXT_COLUMNS, "text", path,
                                             "--text_column")],
                       header[_choose_column(header, label_column, LABEL_COLUMNS, "label",
                                             path, "--label_column")])
        text_key, label_key = columns
        if text_key not in record or label_key not in record:
            raise DataError(f"{path}, line {line_number}: the object has no {text_key!r} or "
                            f"no {label_key!r} field; every line needs both")
        text = record[text_key]
        if not isinstance(text, str):
            raise DataError(f"{path}, line {line_number}: field {text_key!r} is "
                            f"{type(text).__name__}, not a string")
        yield line_number, record[label_key], text


def _label_name(value, origin):
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise DataError(f"{origin}: the label {value!r} is not a string or an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise DataError(f"{origin}: the label {value!r} is not a string or an integer")
        value = int(value)
    name = str(value).strip()
    if not name:
        raise DataError(f"{origin}: the label is empty; every example needs a label")
    return name


def _table_examples(files, data_format, encoding, errors, text_column, label_column):
    for split, path in files:
        if data_format == "jsonl":
            rows = _jsonl_rows(path, encoding, errors, text_column, label_column)
        else:
            delimiter = "\t" if data_format == "tsv" else ","
            rows = _table_rows(path, delimiter, encoding, errors, text_column, label_column)
        for line_number, label, text in rows:
            label = _label_name(label, f"{path}, line {line_number}")
            text = text.strip()
            yield Example(split, label, text, (line_number,), len(text.encode("utf-8")))


def open_table(sources, data_format, encoding="utf-8", errors="strict", text_column=None,
               label_column=None):
    """Open a CSV, TSV or JSON Lines file, or a train/test pair of them.

    ``sources`` is one file, one folder holding ``train.csv`` and
    ``test.csv`` (or ``*_train.*``/``*_test.*``), two files whose names end
    in train and test, or ``train=PATH``/``test=PATH`` pairs.
    """
    files = _table_files(sources)
    total = sum(Path(path).stat().st_size for _, path in files)
    has_test = any(split == "test" for split, _ in files)
    return Corpus(data_format, [path for _, path in files],
                  lambda: _table_examples(files, data_format, encoding, errors, text_column,
                                          label_column),
                  total, grouped_by_label=False, has_test_split=has_test)


def _table_files(sources):
    if len(sources) == 1 and Path(sources[0]).is_dir():
        pair = _table_pair(Path(sources[0]))
        files = _visible_files(Path(sources[0]))
        if "train" not in pair and len(files) == 1:
            return [(None, files[0])]
        if "train" not in pair:
            raise DataError(f"folder {sources[0]!r} contains no train.csv, train.tsv or "
                            "train.jsonl; pass the table file itself")
        return [(split, pair[split]) for split in SPLITS if split in pair]
    if len(sources) == 1:
        return [(None, Path(_split_pair(sources[0])[1]))]
    if len(sources) != 2:
        raise DataError(f"pass one table file or a train/test pair, not {len(sources)} files")
    files = {}
    for source in sources:
        key, path = _split_pair(source)
        if key is None:
            stem = Path(path).name.lower().rsplit(".", 1)[0]
            key = next((split for split in SPLITS if stem.endswith(split)), None)
        if key not in SPLITS or key in files:
            raise DataError(f"cannot tell which of {', '.join(map(str, sources))} is the "
                            "training file; name them train.csv and test.csv or pass "
                            "train=PATH test=PATH")
        files[key] = Path(path)
    return [(split, files[split]) for split in SPLITS]


def _line_examples(files, encoding, errors):
    for label, path in files:
        for line_number, line in decoded_lines(path, encoding, errors):
            text = line.strip()
            yield Example(None, label, text, (label, line_number), len(line))


def _label_files(sources):
    """Return ``[(label, path)]`` for one-file-per-label sources."""
    if len(sources) == 1 and Path(sources[0]).is_dir():
        paths = _visible_files(Path(sources[0]))
        pairs = [(None, str(path)) for path in paths]
    else:
        pairs = [_split_pair(source) for source in sources]
    if all(label is not None for label, _ in pairs):
        files = [(label, Path(path)) for label, path in pairs]
    else:
        paths = [Path(path) for _, path in pairs]
        suffixes = {path.suffix for path in paths}
        if len(paths) > 1 and len(suffixes) == 1:
            # pos.txt, neg.txt: the label is the stem.
            files = [(path.stem, path) for path in paths]
        else:
            files = [(path.suffix[1:], path) for path in paths]
        for label, path in files:
            if not label:
                raise DataError(f"cannot tell the label of {str(path)!r}; name the files "
                                "name.LABEL (rt-polarity.pos) or pass LABEL=PATH")
    labels = [label for label, _ in files]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise DataError(f"label {duplicates[0]!r} comes from more than one file "
                        f"({', '.join(str(path) for label, path in files if label == duplicates[0])}"
                        "); give each label one file, or pass LABEL=PATH pairs")
    for _, path in files:
        if not path.is_file():
            raise FileNotFoundError(f"corpus file {str(path)!r} not found; check the path")
    return files


def open_lines(sources, encoding="utf-8", errors="strict"):
    """Open one plain-text file per label, one example per line."""
    files = _label_files(sources)
    total = sum(path.stat().st_size for _, path in files)
    return Corpus("lines", [path for _, path in files],
                  lambda: _line_examples(files, encoding, errors), total,
                  grouped_by_label=False, has_test_split=False)


def open_corpus(sources, data_format=None, *, encoding="utf-8", errors="strict",
                text_column=None, label_column=None):
    """Open a corpus in any supported layout.

    Parameters
    ----------
    sources : str, Path or list of them
        A folder, an archive, a table file, a train/test pair of tables, or
        one file per label (paths or ``LABEL=PATH`` strings).
    data_format : str, optional
        One of :data:`FORMATS`; detected from ``sources`` when None.
    encoding, errors : str
        How the files are decoded (``errors``: strict, replace or ignore).
    text_column, label_column : str, optional
        Column names of a table; common names (``text``, ``label``, ...)
        are tried when None.

    Returns
    -------
    Corpus
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = [str(source) for source in sources]
    if not sources:
        raise ValueError("no corpus source given; pass a folder, an archive or files")
    check_encoding(encoding, errors)
    if data_format is None:
        data_format = detect_format(sources)
    elif data_format not in FORMATS:
        raise ValueError(f"format {data_format!r} is unknown; choose one of {', '.join(FORMATS)}")
    logger.info("corpus format=%s sources=%s", data_format, " ".join(sources))

    if data_format in ("tree", "folders"):
        if len(sources) != 1:
            raise DataError(f"the {data_format} layout takes one folder, not {len(sources)} "
                            "sources")
        path = Path(sources[0])
        if not path.exists():
            raise FileNotFoundError(f"corpus source {str(path)!r} not found; check the path")
        if data_format == "tree" and path.is_file():
            return open_archive(path, encoding, errors)
        if not path.is_dir():
            raise DataError(f"{str(path)!r} is not a folder; the {data_format} layout needs one")
        opener = open_tree if data_format == "tree" else open_folders
        return opener(path, encoding, errors)
    if data_format == "lines":
        return open_lines(sources, encoding, errors)
    return open_table(sources, data_format, encoding, errors, text_column, label_column)
