"""Tokenizers, chosen by the settings recorded beside each dataset.

Preprocessing stores its tokenizer settings in ``<name>.meta.json`` next to
the dataset and dictionary, and every later step (training, prediction)
rebuilds the same tokenizer from them with :func:`get_tokenizer`.

Three tokenizers exist:

- ``moses``: the tutorial's Moses tokenizer (sacremoses) for ``lang``, with
  escaping of special characters;
- ``whitespace``: splits on runs of white space, for text that is already
  tokenized;
- ``japanese``: morphological analysis with SudachiPy and its ``core``
  dictionary, both installed by the ``ja`` extra
  (``pip install lstm-tutorial[ja]``). Both are wheels from PyPI: no system
  library and no download at run time.

Each lower-cases its tokens when ``lowercase`` is true (the default).
"""

# The tutorial's settings: tokenizer.perl -l en -q, escaping on, then lower case.
MOSES_DEFAULTS = {"tokenizer": "moses", "lang": "en", "escape": True,
                  "aggressive_dash_splits": False, "lowercase": True}
WHITESPACE_DEFAULTS = {"tokenizer": "whitespace", "lowercase": True}
# Sudachi's split mode C gives the longest units (named entities, compounds);
# A gives the shortest, B lies between.
JAPANESE_DEFAULTS = {"tokenizer": "japanese", "analyzer": "sudachipy", "dictionary": "core",
                     "split_mode": "C", "lowercase": True}
TOKENIZER_DEFAULTS = {"moses": MOSES_DEFAULTS, "whitespace": WHITESPACE_DEFAULTS,
                      "japanese": JAPANESE_DEFAULTS}
TOKENIZERS = tuple(TOKENIZER_DEFAULTS)
# SudachiPy rejects inputs over 49,149 bytes; longer texts are analysed in
# pieces of at most this many bytes, cut after a sentence end where possible.
SUDACHI_MAX_BYTES = 40000
_SENTENCE_ENDS = "\n。！？!?．."


def tokenizer_settings(name="moses", **overrides):
    """Return the complete settings of tokenizer ``name`` with ``overrides`` applied.

    Overrides set to None are ignored, so command-line flags left unset keep
    the defaults. Unknown keys for the tokenizer raise ``ValueError``.
    """
    if name not in TOKENIZER_DEFAULTS:
        raise ValueError(f"tokenizer {name!r} is unknown; choose one of {', '.join(TOKENIZERS)}")
    settings = dict(TOKENIZER_DEFAULTS[name])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"the {name} tokenizer has no setting {key!r}; its settings are "
                             f"{', '.join(sorted(set(settings) - {'tokenizer'}))}")
        settings[key] = value
    return settings


def get_tokenizer(settings=None):
    """Return a function that turns one text into a list of tokens.

    Parameters
    ----------
    settings : dict, optional
        ``tokenizer`` names the tokenizer (``moses``, ``whitespace`` or
        ``japanese``); the other keys are its options, and keys that are not
        tokenizer options (such as the ``labels`` of a ``meta.json``) are
        ignored. The tutorial's Moses settings when None.

    Raises
    ------
    ValueError
        For an unknown tokenizer name.
    ImportError
        For the ``japanese`` tokenizer when SudachiPy is not installed.
    """
    settings = dict(settings or {})
    name = settings.get("tokenizer", "moses")
    if name not in TOKENIZER_DEFAULTS:
        raise ValueError(f"tokenizer {name!r} is unknown; choose one of {', '.join(TOKENIZERS)}")
    defaults = TOKENIZER_DEFAULTS[name]
    settings = {key: settings.get(key, value) for key, value in defaults.items()}
    if name == "moses":
        return _moses_tokenizer(settings)
    if name == "whitespace":
        return _whitespace_tokenizer(settings)
    return _japanese_tokenizer(settings)


def _moses_tokenizer(settings):
    from sacremoses import MosesTokenizer

    moses = MosesTokenizer(lang=settings["lang"])
    escape = settings["escape"]
    aggressive = settings["aggressive_dash_splits"]
    lowercase = settings["lowercase"]

    def tokenize_moses(text):
        tokenized = moses.tokenize(text, escape=escape, return_str=True,
                                   aggressive_dash_splits=aggressive)
        return (tokenized.lower() if lowercase else tokenized).split()

    return tokenize_moses


def _whitespace_tokenizer(settings):
    lowercase = settings["lowercase"]

    def tokenize_whitespace(text):
        return (text.lower() if lowercase else text).split()

    return tokenize_whitespace


def split_for_sudachi(text, max_bytes=SUDACHI_MAX_BYTES):
    """Cut ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes.

    Each cut falls just after the last sentence end (``。``, ``！``, a line
    break, ...) inside the limit, or at the limit when a piece has none.
    """
    pieces = []
    while len(text.encode("utf-8")) > max_bytes:
        # Characters take at most 4 bytes in UTF-8, so max_bytes // 4 always fits.
        head = text[: max_bytes // 4]
        extra = text[len(head):]
        while extra and len((head + extra[:256]).encode("utf-8")) <= max_bytes:
            head, extra = head + extra[:256], extra[256:]
        cut = max(head.rfind(mark) for mark in _SENTENCE_ENDS) + 1
        if cut <= 0:
            cut = len(head)
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


def _japanese_tokenizer(settings):
    try:
        from sudachipy import Dictionary
    except ImportError as error:
        raise ImportError(
            "the japanese tokenizer needs SudachiPy and its core dictionary; install them "
            "with: pip install 'lstm-tutorial[ja]'"
        ) from error
    if settings["analyzer"] != "sudachipy":
        raise ValueError(f"analyzer {settings['analyzer']!r} is unknown; the japanese "
                         "tokenizer uses sudachipy")
    if settings["split_mode"] not in ("A", "B", "C"):
        raise ValueError(f"split_mode {settings['split_mode']!r} is invalid; choose A (short "
                         "units), B (middle) or C (long units)")
    try:
        dictionary = Dictionary(dict=settings["dictionary"])
    except Exception as error:  # SudachiPy raises its own error types for a missing dictionary
        raise ImportError(
            f"SudachiPy cannot load its {settings['dictionary']!r} dictionary ({error}); install "
            "it with: pip install 'lstm-tutorial[ja]'"
        ) from error
    analyzer = dictionary.tokenizer(mode=settings["split_mode"])
    lowercase = settings["lowercase"]

    def tokenize_japanese(text):
        tokens = []
        for piece in split_for_sudachi(text):
            tokens.extend(morpheme.surface() for morpheme in analyzer.tokenize(piece))
        # Sudachi returns spaces and line breaks as tokens of their own; drop them.
        tokens = [token.strip() for token in tokens]
        tokens = [token for token in tokens if token]
        return [token.lower() for token in tokens] if lowercase else tokens

    return tokenize_japanese
