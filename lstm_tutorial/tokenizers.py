"""Tokenizers, chosen by the settings recorded beside each dataset.

Preprocessing stores its tokenizer settings in ``<name>.meta.json`` next to
the dataset and dictionary, and every later step (training, prediction)
rebuilds the same tokenizer from them with :func:`get_tokenizer`.
"""

# The tutorial's settings: tokenizer.perl -l en -q, escaping on, then lower case.
MOSES_DEFAULTS = {"tokenizer": "moses", "lang": "en", "escape": True,
                  "aggressive_dash_splits": False, "lowercase": True}


def get_tokenizer(settings=None):
    """Return a function that turns one text into a list of tokens.

    Parameters
    ----------
    settings : dict, optional
        ``tokenizer`` names the tokenizer (``moses``); the other keys are its
        options. The tutorial's Moses settings when None.

    Raises
    ------
    ValueError
        For an unknown tokenizer name.
    """
    settings = dict(MOSES_DEFAULTS, **(settings or {}))
    name = settings["tokenizer"]
    if name == "moses":
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
    raise ValueError(f"tokenizer {name!r} is unknown; choose moses")
