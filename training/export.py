"""ONNX and TFLite exports of a trained Keras model.

Both take float32 ``window`` [batch, window, channels] in raw units and give
float32 ``probabilities`` [batch, labels], any batch size. Known pitfalls of
TF 2.21 / Keras 3 handled here:

* TFLite cannot convert a BiLSTM's ``TensorList`` loop with a dynamic element
  shape, so the same weights are rebuilt with ``LSTM(unroll=True)`` for the
  fixed window length and converted through a Keras ``ExportArchive``
  SavedModel (which also freezes the weights; converting the concrete function
  directly leaves uninitialized resource variables behind).
* ``tf2onnx.convert.from_keras`` fails on Keras 3; ``from_function`` on a
  ``tf.function`` with a fixed input signature works (native ONNX LSTM), but it
  cannot freeze the Normalization layer's captured eager constants, so a
  throwaway copy holds them in ``tf.Variable`` s, which it does freeze.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from training.models import INPUT_NAME, NORM_NAME, OUTPUT_NAME, build_model
from training.params import TrainParams

logger = logging.getLogger(__name__)
ONNX_OPSET = 17


def _copy(model, params: TrainParams, mean, std, unroll: bool):
    n_channels = int(model.input_shape[-1])
    n_labels = int(model.output_shape[-1])
    clone = build_model(params, n_channels, n_labels, mean, std, unroll=unroll)
    clone.set_weights(model.get_weights())
    return clone


def _signature(model):
    import tensorflow as tf

    window, channels = int(model.input_shape[1]), int(model.input_shape[2])
    return [tf.TensorSpec([None, window, channels], tf.float32, name=INPUT_NAME)]


def export_onnx(model, params: TrainParams, mean, std, path: Path) -> None:
    """Write ``model`` as ONNX to ``path``."""
    import tensorflow as tf
    import tf2onnx

    clone = _copy(model, params, mean, std, unroll=False)
    norm = clone.get_layer(NORM_NAME)
    norm.mean = tf.Variable(norm.mean, trainable=False)
    norm.variance = tf.Variable(norm.variance, trainable=False)
    signature = _signature(clone)

    @tf.function(input_signature=signature)
    def serve(window):
        return {OUTPUT_NAME: clone(window, training=False)}

    tf2onnx.convert.from_function(
        serve, input_signature=signature, opset=ONNX_OPSET, output_path=str(path)
    )


def export_tflite(model, params: TrainParams, mean, std, path: Path) -> None:
    """Write ``model`` as TFLite (builtin ops only) to ``path``."""
    import keras
    import tensorflow as tf

    clone = _copy(model, params, mean, std, unroll=True)
    archive = keras.export.ExportArchive()
    archive.track(clone)
    archive.add_endpoint(
        "serving_default",
        lambda window: {OUTPUT_NAME: clone(window, training=False)},
        input_signature=_signature(clone),
    )
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        path.write_bytes(converter.convert())


def onnx_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an exported ONNX model with onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0])


def tflite_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an exported TFLite model with the LiteRT interpreter (its signature runner)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    return np.asarray(runner(**{INPUT_NAME: x.astype(np.float32)})[OUTPUT_NAME])
