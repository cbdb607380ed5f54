"""LSTM networks for sentiment analysis: the Theano tutorial ported to PyTensor.

The public names are the tutorial's: ``train_lstm``, ``load_data``,
``prepare_data``, the model functions and the optimizers, plus
``load_model`` to classify new text with a saved model.
"""

__version__ = "0.1.0"

from lstm_tutorial.data import load_data, prepare_data
from lstm_tutorial.prediction import load_model
from lstm_tutorial.training import (
    get_minibatches_idx,
    pred_error,
    pred_probs,
    train_lstm,
)

__all__ = [
    "load_data",
    "prepare_data",
    "train_lstm",
    "pred_error",
    "pred_probs",
    "get_minibatches_idx",
    "load_model",
]
