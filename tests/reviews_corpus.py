"""A tiny aclImdb-style corpus written on the fly, for tests that need raw text."""

import numpy as np

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant", "moving"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dull", "clumsy"]
# Vocabulary limit of the tiny test model: smaller than this corpus's
# vocabulary, so some real words map to the unknown id as ids >= n_words.
TINY_N_WORDS = 30

NEUTRAL = ["the", "movie", "film", "plot", "actor", "was", "and", "it", "a", "story",
           "scene", "ending", "music", "cast"]


def review_text(rng, label):
    """Return one review: neutral words with one to three words of its sentiment."""
    sentiment = POSITIVE if label == 1 else NEGATIVE
    words = list(rng.choice(NEUTRAL, size=int(rng.integers(4, 12))))
    for _ in range(int(rng.integers(1, 4))):
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(sentiment)))
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.3:
        text += " It's a <br /><br /> film!"
    return text


def write_reviews_folder(root, n_train=60, n_test=20, seed=0):
    """Write ``root/{train,test}/{pos,neg}/<id>_<rating>.txt`` and return ``root``.

    Each split gets ``n_train`` (or ``n_test``) reviews per class.
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        for folder, label in (("pos", 1), ("neg", 0)):
            target = root / split / folder
            target.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rating = 8 if label == 1 else 2
                (target / f"{index}_{rating}.txt").write_text(review_text(rng, label) + "\n",
                                                              encoding="utf-8")
    return root
