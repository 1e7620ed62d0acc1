"""Model architectures (Keras 3, built-in layers only so ``safe_mode=True`` loads them).

Every model takes raw windows ``[batch, window, channels]`` named ``window``,
standardizes them with a fixed :class:`keras.layers.Normalization` layer (mean
and variance fitted on training data only), and ends in a softmax layer named
``probabilities``.

* ``bilstm_stats`` (default): stacked bidirectional LSTMs on the standardized
  window minus its own mean, with Gaussian input noise while training
  (``noise``; identity at inference), plus a statistics-pooling branch
  (per-channel mean, variance, max, min of the standardized window,
  batch-normalized), concatenated before the softmax. Without centring and
  noise the LSTM branch learns session-specific offsets and whole classes of
  an unseen session fail (see docs/benchmarks.md). While training, the whole
  LSTM feature vector of a window is dropped with probability
  :data:`BRANCH_DROPOUT`, so the statistics alone must classify it: without
  that, which seed trained the model decided whether a few windows of an
  unseen session went to a neighbouring class (seed-fitness LOSO, five seeds:
  99.45-99.88 % mean; docs/benchmarks.md "Stability across seeds").
* ``bilstm``: the original project's network done right: stacked
  ``Bidirectional(LSTM(units))``, dropout, softmax, categorical cross-entropy.
* ``original``: the original exactly (sigmoid output, binary cross-entropy);
  served with a softmax over the same logits (same argmax).
* ``stats``: the statistics branch alone (batch-normalized per-channel mean,
  variance, max, min -> dropout -> softmax): an in-graph logistic regression
  on window statistics; no recurrence.
* ``cnn``: a compact 1D CNN with average and max pooling.
"""

from __future__ import annotations

import numpy as np

from training.params import TrainParams

INPUT_NAME = "window"
OUTPUT_NAME = "probabilities"
NORM_NAME = "standardize"
BRANCH_DROPOUT = 0.5  # bilstm_stats: P(a window's LSTM features are dropped) while training


def build_model(
    params: TrainParams,
    n_channels: int,
    n_labels: int,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    unroll: bool = False,
    serving: bool = True,
):
    """Build (not compile) a model; ``serving=False`` gives the training head of ``original``."""
    import keras

    inp = keras.Input((params.window, n_channels), name=INPUT_NAME)
    x = keras.layers.Normalization(
        mean=np.asarray(mean, dtype=np.float64),
        variance=np.square(np.asarray(std, dtype=np.float64)),
        name=NORM_NAME,
    )(inp)
    if params.arch == "cnn":
        h = _cnn(keras, x, params)
    elif params.arch == "stats":
        stats = keras.layers.Concatenate(name="stats")(_stats(keras, x, params.window))
        h = keras.layers.BatchNormalization(name="stats_norm")(stats)
    elif params.arch == "bilstm_stats":
        stat_list = _stats(keras, x, params.window)
        # The LSTM sees the window minus its own mean (the stats branch carries the mean).
        centred = keras.layers.Subtract(name="centred")(
            [x, keras.layers.RepeatVector(params.window)(stat_list[0])]
        )
        noisy = keras.layers.GaussianNoise(params.noise, seed=params.seed)(centred)
        stats = keras.layers.Concatenate(name="stats")(stat_list)
        stats = keras.layers.BatchNormalization(name="stats_norm")(stats)
        lstm = _bilstm(keras, noisy, params, unroll)
        # One mask value per window: the whole branch is dropped, never single features.
        lstm = keras.layers.Dropout(
            BRANCH_DROPOUT, noise_shape=(None, 1), seed=params.seed + 1, name="lstm_branch_drop"
        )(lstm)
        h = keras.layers.Concatenate(name="features")([lstm, stats])
    else:
        h = _bilstm(keras, x, params, unroll)
    h = keras.layers.Dropout(params.dropout, seed=params.seed)(h)
    activation = "sigmoid" if params.arch == "original" and not serving else "softmax"
    out = keras.layers.Dense(n_labels, activation=activation, name=OUTPUT_NAME)(h)
    return keras.Model(inp, out, name=params.arch)


def compile_model(model, params: TrainParams) -> None:
    """Adam + the loss the architecture trains with."""
    import keras

    loss = "binary_crossentropy" if params.arch == "original" else "categorical_crossentropy"
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params.lr), loss=loss, metrics=["accuracy"]
    )


def _bilstm(keras, x, params: TrainParams, unroll: bool):
    h = x
    for i in range(params.layers):
        last = i == params.layers - 1
        lstm = keras.layers.LSTM(params.units, return_sequences=not last, unroll=unroll)
        h = keras.layers.Bidirectional(lstm, name=f"bilstm_{i}")(h)
    return h


def _stats(keras, x, window: int):
    """Per-channel mean, variance, max and min over time, from built-in layers."""
    L = keras.layers
    mean = L.GlobalAveragePooling1D(name="stat_mean")(x)
    centred = L.Subtract()([x, L.RepeatVector(window)(mean)])
    var = L.GlobalAveragePooling1D(name="stat_var")(L.Multiply()([centred, centred]))
    top = L.GlobalMaxPooling1D(name="stat_max")(x)
    low = L.Rescaling(-1.0)(L.GlobalMaxPooling1D()(L.Rescaling(-1.0)(x)))
    return [mean, var, top, low]


def _cnn(keras, x, params: TrainParams):
    L = keras.layers
    h = x
    for _ in range(params.layers):
        h = L.Conv1D(params.units, 5, padding="same", activation="relu")(h)
    return L.Concatenate()([L.GlobalAveragePooling1D()(h), L.GlobalMaxPooling1D()(h)])
