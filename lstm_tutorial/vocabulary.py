"""Read a dataset's dictionary and metadata, and turn texts into word ids.

Preprocessing writes three files that share a stem: ``<name>.pkl`` (the
dataset), ``<name>.dict.pkl`` (word to id) and ``<name>.meta.json``
(tokenizer settings and label names). A trained model records the path of
the dictionary and its SHA-256 digest, so that prediction can find it again
and reject a dictionary from another dataset.
"""

import hashlib
import json
import logging
from pathlib import Path

from lstm_tutorial.data import open_maybe_gzip, safe_pickle_load
from lstm_tutorial.fileio import DataError

logger = logging.getLogger(__name__)

UNKNOWN_ID = 1


def load_dictionary(path):
    """Read a ``<name>.dict.pkl`` file (a pickled dict of word to id).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DataError
        When the file is not a dictionary of words to ids of 2 or more
        (0 is padding and 1 the unknown word, so no word may use them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dictionary {str(path)!r} not found; pass the <name>.dict.pkl "
                                "written by preprocessing")
    try:
        with open_maybe_gzip(path) as handle:
            dictionary = safe_pickle_load(handle)
    except Exception as error:  # any unpickling failure means the file is unusable
        raise DataError(f"dictionary {str(path)!r} cannot be read as a pickled dict: "
                        f"{type(error).__name__}: {error}") from error
    if not isinstance(dictionary, dict):
        raise DataError(f"dictionary {str(path)!r} contains a {type(dictionary).__name__}, not a "
                        "dict of word to id; pass the <name>.dict.pkl written by preprocessing")
    for word, index in dictionary.items():
        if not isinstance(word, str) or isinstance(index, bool) or not isinstance(index, int):
            raise DataError(f"dictionary {str(path)!r} maps {word!r} to {index!r}; every entry "
                            "must map a word (str) to an integer id")
        if index < 2:
            raise DataError(f"dictionary {str(path)!r} gives {word!r} the id {index}; ids 0 "
                            "(padding) and 1 (unknown word) are reserved, so words start at 2")
    return dictionary


def dictionary_sha256(dictionary):
    """Return a SHA-256 hex digest of a dictionary's content, independent of pickling."""
    digest = hashlib.sha256()
    for word, index in sorted(dictionary.items()):
        digest.update(f"{word}\t{index}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def meta_path(dictionary_path):
    """Return the ``<name>.meta.json`` path that belongs to ``<name>.dict.pkl``."""
    dictionary_path = Path(dictionary_path)
    name = dictionary_path.name
    for suffix in (".dict.pkl.gz", ".dict.pkl"):
        if name.endswith(suffix):
            return dictionary_path.with_name(name[: -len(suffix)] + ".meta.json")
    return dictionary_path.with_suffix(".meta.json")


def load_meta(dictionary_path):
    """Read the metadata beside a dictionary, or None when there is none.

    Raises
    ------
    DataError
        When the file exists but is not a JSON object.
    """
    path = meta_path(dictionary_path)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"metadata {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(meta, dict):
        raise DataError(f"metadata {str(path)!r} contains a JSON {type(meta).__name__}, not an "
                        "object with tokenizer settings and labels")
    return meta


def encode_tokens(tokens, dictionary, n_words):
    """Map tokens to ids as training saw them: unknown words and ids >= n_words become 1."""
    ids = []
    for token in tokens:
        index = dictionary.get(token, UNKNOWN_ID)
        ids.append(index if index < n_words else UNKNOWN_ID)
    return ids
