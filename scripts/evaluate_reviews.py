"""Classify labelled aclImdb reviews from their raw text and report the accuracy.

Usage::

    python scripts/evaluate_reviews.py aclImdb_v1.tar.gz --model lstm_model.npz -n 500

It draws ``n`` reviews of a split (``test`` by default) at random, classifies
their raw text through :func:`lstm_tutorial.load_model` (tokenizer, dictionary,
``n_words`` limit) and prints the accuracy. When the model's dataset file is
available (recorded in the model, or ``--dataset``), it also computes the
model's own error with ``pred_error`` on the stored word ids of the same
reviews, and checks that raw text gives exactly those ids and that the
accuracy equals ``1 - pred_error``. Exit status: 0 when they agree or no
dataset file is available, 1 on a mismatch or an error.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def select_reviews(source, split, n_reviews, seed):
    """Return the indices, texts and labels of ``n_reviews`` random reviews of a split."""
    from lstm_tutorial.preprocess import read_imdb

    reviews = read_imdb(source)[split]
    if n_reviews <= 0 or n_reviews >= len(reviews):
        indices = np.arange(len(reviews))
    else:
        indices = np.sort(np.random.default_rng(seed).choice(len(reviews), n_reviews,
                                                             replace=False))
    return (indices, [reviews[index][0] for index in indices],
            np.asarray([reviews[index][1] for index in indices], dtype="int64"), len(reviews))


def error_on_stored_ids(model, dataset_file, split, indices, n_split_reviews):
    """Return ``(pred_error, stored ids)`` of the model on the dataset's copy of the reviews."""
    import pytensor

    from lstm_tutorial.data import prepare_data, read_dataset_file
    from lstm_tutorial.fileio import DataError
    from lstm_tutorial.training import get_minibatches_idx, pred_error
    from lstm_tutorial.vocabulary import UNKNOWN_ID

    train, test = read_dataset_file(dataset_file)
    stored_x, stored_y = train if split == "train" else test
    if len(stored_x) != n_split_reviews:
        raise DataError(
            f"dataset {str(dataset_file)!r} contains {len(stored_x)} {split} reviews but the "
            f"source holds {n_split_reviews}; it was built from another source"
        )
    # load_data maps ids >= n_words to the unknown id before training and evaluation.
    ids = [[index if index < model.n_words else UNKNOWN_ID for index in stored_x[review]]
           for review in indices]
    labels = [int(stored_y[review]) for review in indices]

    def f_pred(x, mask):
        return model.f_pred_prob(x, mask).argmax(axis=1)

    with pytensor.config.change_flags(floatX=model.floatX):
        error = pred_error(f_pred, prepare_data, (ids, labels),
                           get_minibatches_idx(len(ids), 64))
    return error, ids, labels


def evaluate(source, model_path, *, n_reviews=500, split="test", seed=0, dictionary=None,
             dataset=None):
    """Classify reviews from raw text and compare with the model's error on stored ids.

    Returns
    -------
    dict
        ``reviews``, ``accuracy`` (raw text), and when a dataset file is found
        ``dataset_file``, ``pred_error`` (stored ids), ``identical_ids`` (how
        many reviews encode to exactly the stored ids) and ``match``.
    """
    from lstm_tutorial.prediction import load_model

    model = load_model(model_path, dictionary)
    indices, texts, labels, n_split_reviews = select_reviews(source, split, n_reviews, seed)
    encoded = model.encode(texts)
    probs = model.predict_proba_ids([item.ids for item in encoded])
    predictions = probs.argmax(axis=1)
    accuracy = float((predictions == labels).mean())
    result = {"source": str(source), "model": str(model_path), "split": split,
              "reviews": len(texts), "seed": seed, "accuracy": accuracy,
              "labels": {label: int((predictions == k).sum())
                         for k, label in enumerate(model.labels)}}

    dataset_file = dataset or (model.options or {}).get("dataset_file")
    if not dataset_file or not Path(dataset_file).is_file():
        logging.getLogger(__name__).warning(
            "no dataset file to compare with (pass --dataset); reporting accuracy only")
        return result
    error, stored_ids, stored_labels = error_on_stored_ids(model, dataset_file, split, indices,
                                                           n_split_reviews)
    identical = sum(1 for item, ids in zip(encoded, stored_ids) if item.ids == ids)
    result.update({
        "dataset_file": str(dataset_file),
        "pred_error": error,
        "identical_ids": identical,
        "labels_agree": bool(np.array_equal(labels, stored_labels)),
        "match": bool(identical == len(texts) and np.array_equal(labels, stored_labels)
                      and abs(accuracy - (1.0 - error)) < 1e-12),
    })
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="aclImdb folder or .tar.gz archive of one")
    parser.add_argument("--model", default="lstm_model.npz", help="model file (.npz)")
    parser.add_argument("-n", "--reviews", type=int, default=500,
                        help="reviews to draw at random; 0 for the whole split (default: 500)")
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="split to draw from (default: test, never seen in training)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    parser.add_argument("--dict", dest="dictionary", help="dictionary <name>.dict.pkl "
                        "(default: the one the model recorded)")
    parser.add_argument("--dataset", help="dataset file (<name>.pkl) built from the same "
                        "source (default: the one the model recorded)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("pytensor").setLevel(logging.ERROR)

    from lstm_tutorial.fileio import DataError

    try:
        result = evaluate(args.source, args.model, n_reviews=args.reviews, split=args.split,
                          seed=args.seed, dictionary=args.dictionary, dataset=args.dataset)
    except (OSError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"reviews={result['reviews']} split={result['split']} "
              f"accuracy={result['accuracy']:.4f}")
        if "pred_error" in result:
            print(f"pred_error on the stored ids of the same reviews={result['pred_error']:.4f} "
                  f"(1 - pred_error={1.0 - result['pred_error']:.4f}) identical_ids="
                  f"{result['identical_ids']}/{result['reviews']} "
                  f"match={'yes' if result['match'] else 'NO'}")
    return 0 if result.get("match", True) else 1


if __name__ == "__main__":
    sys.exit(main())
