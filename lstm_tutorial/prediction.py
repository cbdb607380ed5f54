"""Load a saved model and classify raw text with it.

:func:`load_model` reads an ``.npz`` model, finds the dictionary and the
tokenizer settings of the data it was trained on, and compiles only the
prediction graph (no gradients), so it starts in seconds once PyTensor's
compile cache is warm::

    from lstm_tutorial import load_model

    model = load_model("lstm_model.npz")
    model.predict_proba(["A wonderful film.", "Dull and far too long."])
    [model.labels[k] for k in model.predict(["A wonderful film."])]

Texts go through the same steps as the training data: the tokenizer named in
``<name>.meta.json``, the dictionary ``<name>.dict.pkl``, and the model's
``n_words`` limit (unknown words and ids ``>= n_words`` become 1).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_tutorial.fileio import DataError
from lstm_tutorial.model import PARAM_NAMES
from lstm_tutorial.modelio import model_options, open_model
from lstm_tutorial.vocabulary import (
    UNKNOWN_ID,
    dictionary_sha256,
    encode_tokens,
    load_dictionary,
    load_meta,
)

logger = logging.getLogger(__name__)

# JAX (optional) compiles once per bucket of padded lengths and batch size, see jax_mode.py.
MODES = ("VM", "NUMBA", "CVM", "FAST_COMPILE", "JAX")
# Texts per batch, and padded cells (longest text x texts) per batch: texts are
# sorted by length and cut into batches that respect both limits, so a few
# long reviews do not pad thousands of short ones.
BATCH_SIZE = 64
MAX_BATCH_TOKENS = 64 * 512

NOTE_EMPTY = ("empty text: predicted as if it were a single unknown word, because the mean "
              "over zero words is undefined")
NOTE_NO_KNOWN_WORDS = "no known words: every token maps to the unknown-word id 1"


@dataclass
class EncodedText:
    """Word ids of one text and what happened on the way."""

    ids: list
    n_tokens: int
    n_unknown: int
    notes: list = field(default_factory=list)


def _check_params(arrays, path):
    missing = [name for name in PARAM_NAMES if name not in arrays]
    if missing:
        raise DataError(
            f"{str(path)!r} is not an LSTM model: parameter(s) {', '.join(missing)} missing "
            f"(it contains {', '.join(sorted(arrays)) or 'no arrays'})"
        )
    n_words, dim_proj = arrays["Wemb"].shape if arrays["Wemb"].ndim == 2 else (0, 0)
    ydim = arrays["U"].shape[1] if arrays["U"].ndim == 2 else 0
    expected = {"Wemb": (n_words, dim_proj), "lstm_W": (dim_proj, 4 * dim_proj),
                "lstm_U": (dim_proj, 4 * dim_proj), "lstm_b": (4 * dim_proj,),
                "U": (dim_proj, ydim), "b": (ydim,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape or n_words == 0 or ydim == 0:
            raise DataError(
                f"{str(path)!r}: parameter {name!r} has shape {arrays[name].shape}, expected "
                f"{shape} from Wemb {arrays['Wemb'].shape} and U {arrays['U'].shape}; the file "
                "is damaged or not a model of this tutorial"
            )
    return n_words, dim_proj, ydim


def _find_dictionary(options, dictionary, model_path):
    if dictionary is not None:
        return Path(dictionary)
    tried = []
    if options and options.get("dictionary"):
        recorded = Path(options["dictionary"])
        if recorded.is_file():
            return recorded
        tried.append(str(recorded))
    if options and options.get("dataset_file"):
        from lstm_tutorial.datasets import dictionary_path

        beside_dataset = dictionary_path(options["dataset_file"])
        if beside_dataset is not None:
            return beside_dataset
        tried.append(f"the dictionary beside {options['dataset_file']}")
    if options is None:
        raise FileNotFoundError(
            f"model {str(model_path)!r} records no options (the original tutorial's layout), "
            "so its dictionary is unknown; pass the <name>.dict.pkl it was trained with "
            "(dictionary= or --dict)"
        )
    raise FileNotFoundError(
        f"the dictionary of model {str(model_path)!r} was not found (tried "
        f"{', '.join(tried) or 'nothing: the model records no dictionary'}); pass the "
        "<name>.dict.pkl it was trained with (dictionary= or --dict)"
    )


class TrainedModel:
    """A saved LSTM classifier, ready to classify raw text.

    Attributes
    ----------
    path : Path
        The model file.
    options : dict or None
        The training options stored in the model; None for the original
        tutorial's layout.
    labels : list of str
        Label name of each class id (class numbers when the metadata has none).
    n_words, dim_proj, ydim : int
        Sizes read from the parameters.
    dictionary : dict of str to int
    dictionary_path : Path
    tokenizer_settings : dict
    f_pred_prob : compiled function
        ``f_pred_prob(x, mask)`` with ``x`` int64 and ``mask`` floatX, both
        ``(n_steps, n_samples)``, returns ``(n_samples, ydim)`` probabilities,
        as the tutorial's function of that name.
    """

    def __init__(self, path, arrays, options, dictionary_path, *, mode=None, use_dropout=None):
        self.path = Path(path)
        self.options = options
        self.n_words, self.dim_proj, self.ydim = _check_params(arrays, path)
        self.floatX = str(arrays["Wemb"].dtype)
        if self.floatX not in ("float32", "float64"):
            raise DataError(f"{str(path)!r}: parameters of dtype {self.floatX} are not "
                            "supported; models use float32 or float64")
        if options and options.get("n_words") not in (None, self.n_words):
            raise DataError(f"{str(path)!r}: options give n_words={options['n_words']} but Wemb "
                            f"has {self.n_words} rows; the file is damaged")
        self.mode = mode or "VM"
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if self.mode == "JAX":
            from lstm_tutorial.jax_mode import require_jax

            require_jax()
        if use_dropout is None:
            use_dropout = (options or {}).get("use_dropout")
            if use_dropout is None:
                # The original's default; its evaluation halves the pooled state.
                use_dropout = True
                logger.warning("model=%s records no use_dropout; assuming True, the original "
                               "default (pass use_dropout=False if it was trained without)",
                               self.path)
        self.use_dropout = bool(use_dropout)

        self._load_vocabulary(dictionary_path)
        self._compile(arrays)

    def _load_vocabulary(self, dictionary_path):
        from lstm_tutorial.tokenizers import MOSES_DEFAULTS, get_tokenizer

        self.dictionary_path = Path(dictionary_path)
        self.dictionary = load_dictionary(self.dictionary_path)
        recorded = (self.options or {}).get("dictionary_sha256")
        if recorded and dictionary_sha256(self.dictionary) != recorded:
            raise DataError(
                f"dictionary {str(self.dictionary_path)!r} does not match model "
                f"{str(self.path)!r}: the model was trained with another dictionary (recorded "
                f"at {self.options.get('dictionary')!r}); pass that one with --dict (dictionary= in Python)"
            )
        if not recorded:
            # NOTE: without a recorded digest (original-layout or older models) a
            # dictionary from another dataset goes undetected, because only its form is checked.
            logger.warning("model=%s records no dictionary digest; cannot verify that %s is "
                           "the dictionary it was trained with", self.path,
                           self.dictionary_path)

        meta = load_meta(self.dictionary_path)
        if meta is None:
            logger.warning("no %s beside %s; using the tutorial's Moses tokenizer settings "
                           "and class numbers as labels", "meta.json", self.dictionary_path)
            meta = {}
        self.tokenizer_settings = {key: value for key, value in meta.items()
                                   if key in MOSES_DEFAULTS}
        self.tokenizer_settings.setdefault("tokenizer", MOSES_DEFAULTS["tokenizer"])
        self._tokenize = get_tokenizer(self.tokenizer_settings)
        labels = meta.get("labels")
        if labels is None:
            labels = [str(index) for index in range(self.ydim)]
        elif len(labels) != self.ydim:
            raise DataError(
                f"metadata beside {str(self.dictionary_path)!r} names {len(labels)} labels "
                f"({', '.join(map(str, labels))}) but model {str(self.path)!r} has {self.ydim} "
                "classes; the dictionary belongs to another dataset"
            )
        self.labels = [str(label) for label in labels]

    def _compile(self, arrays):
        import time

        import pytensor

        from lstm_tutorial.model import build_pred_prob, init_tparams

        start = time.perf_counter()
        # The fused LSTM Op has no JAX implementation; JAX runs the scan.
        options = {"dim_proj": self.dim_proj, "use_dropout": self.use_dropout,
                   "lstm_impl": "scan" if self.mode == "JAX" else "fused"}
        with pytensor.config.change_flags(floatX=self.floatX):
            tparams = init_tparams({name: arrays[name] for name in PARAM_NAMES})
            x, mask, pred_prob = build_pred_prob(tparams, options)
            if self.mode == "JAX":
                from lstm_tutorial import jax_mode

                # Compiles at the first call for each padded length and batch size.
                mode = jax_mode.compile_mode()
            else:
                mode = self.mode
            self.f_pred_prob = pytensor.function([x, mask], pred_prob, name="f_pred_prob",
                                                 mode=mode)
        logger.info("compile mode=%s floatX=%s seconds=%.1f", self.mode, self.floatX,
                    time.perf_counter() - start)

    def encode(self, texts):
        """Tokenize texts and map them to word ids, as the training data was.

        Returns
        -------
        list of EncodedText
            An empty text becomes ``[1]`` (one unknown word) with a note.
        """
        encoded = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r}")
            tokens = self._tokenize(text)
            ids = encode_tokens(tokens, self.dictionary, self.n_words)
            n_unknown = sum(1 for index in ids if index == UNKNOWN_ID)
            notes = []
            if not ids:
                ids = [UNKNOWN_ID]
                notes.append(NOTE_EMPTY)
            elif n_unknown == len(ids):
                notes.append(NOTE_NO_KNOWN_WORDS)
            encoded.append(EncodedText(ids, len(tokens), n_unknown, notes))
        return encoded

    def predict_proba_ids(self, sequences):
        """Return ``(n, ydim)`` class probabilities of id sequences (none may be empty)."""
        probs = np.zeros((len(sequences), self.ydim), dtype=self.floatX)
        for batch in self._batches([len(sequence) for sequence in sequences]):
            x, mask = self._prepare([sequences[index] for index in batch])
            probs[batch] = self.f_pred_prob(x, mask)[: len(batch)]
        return probs

    def predict_proba(self, texts):
        """Return the class probabilities of each text, shape ``(len(texts), ydim)``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.predict_proba_ids([item.ids for item in self.encode(texts)])

    def predict(self, texts):
        """Return the most probable class id of each text (``labels[k]`` names it)."""
        return self.predict_proba(texts).argmax(axis=1)

    def classify(self, texts):
        """Classify texts and describe each result as a JSON-ready dict.

        Each dict contains ``label`` (name), ``class_id``, ``probabilities``
        (label name to probability), ``n_tokens``, ``n_unknown`` and ``notes``.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        encoded = self.encode(texts)
        probs = self.predict_proba_ids([item.ids for item in encoded])
        results = []
        for text, item, row in zip(texts, encoded, probs):
            class_id = int(row.argmax())
            results.append({
                "text": text,
                "label": self.labels[class_id],
                "class_id": class_id,
                "probabilities": {label: float(p) for label, p in zip(self.labels, row)},
                "n_tokens": item.n_tokens,
                "n_unknown": item.n_unknown,
                "notes": item.notes,
            })
        return results

    def _batches(self, lengths):
        order = np.argsort(np.asarray(lengths, dtype="int64"), kind="stable")
        batch = []
        for index in order:
            # Sorted ascending, so the newest text is the longest of the batch.
            if batch and (len(batch) >= BATCH_SIZE
                          or (len(batch) + 1) * lengths[index] > MAX_BATCH_TOKENS):
                yield np.asarray(batch, dtype="int64")
                batch = []
            batch.append(index)
        if batch:
            yield np.asarray(batch, dtype="int64")

    def _prepare(self, sequences):
        n_steps = max(len(sequence) for sequence in sequences)
        x = np.zeros((n_steps, len(sequences)), dtype="int64")
        mask = np.zeros((n_steps, len(sequences)), dtype=self.floatX)
        for column, sequence in enumerate(sequences):
            x[: len(sequence), column] = sequence
            mask[: len(sequence), column] = 1.0
        return x, mask


def load_model(path, dictionary=None, *, mode=None, use_dropout=None):
    """Load a saved model for prediction, compiling only its prediction graph.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` model written by this project or by the original tutorial.
    dictionary : str or Path, optional
        The ``<name>.dict.pkl`` of the training data. By default the one the
        model recorded (``options["dictionary"]``, else the one beside
        ``options["dataset_file"]``); required for original-layout models.
    mode : str, optional
        PyTensor compile mode: VM (the default, whatever mode the model was trained
        with), NUMBA, CVM, FAST_COMPILE or JAX (needs jax; runs the scan LSTM).
    use_dropout : bool, optional
        Whether the model was trained with dropout (evaluation then halves the
        pooled state); read from the options, True (the original's default)
        when the model records none.

    Returns
    -------
    TrainedModel

    Raises
    ------
    FileNotFoundError
        When the model or its dictionary cannot be found.
    DataError
        When the file is not a model, or the dictionary or its metadata do not
        match the model.
    """
    arrays = open_model(path)
    options = model_options(arrays)
    dictionary_path = _find_dictionary(options, dictionary, path)
    return TrainedModel(path, arrays, options, dictionary_path, mode=mode,
                        use_dropout=use_dropout)
