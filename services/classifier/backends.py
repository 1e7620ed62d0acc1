"""Inference backends for a model artifact: ONNX Runtime, LiteRT, TensorFlow.

Every backend maps a float32 batch ``[batch, window, channels]`` in raw units to
float32 softmax probabilities ``[batch, labels]``. ONNX Runtime and LiteRT are
imported lazily and never pull in TensorFlow; the TensorFlow backend (loading
``model.keras`` with ``safe_mode``) is the heavy one, used only when chosen or
explicitly allowed as a fallback. ``auto`` loads the lightweight exports the
artifact has and keeps the one that measures faster.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import INPUT_NAME, KERAS_FILE, ONNX_FILE, OUTPUT_NAME, TFLITE_FILE
from services.classifier.settings import ClassifierSettings

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "litert", "tensorflow")
LIGHT = ("onnx", "litert")
BUCKETS = (1, 8, 64, 256)  # LiteRT batch sizes (see LiteRTBackend)
FILES = {"onnx": ONNX_FILE, "litert": TFLITE_FILE, "tensorflow": KERAS_FILE}


class Backend(Protocol):
    """A loaded model that turns windows into probabilities."""

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``[batch, labels]`` for float32 windows ``[batch, window, channels]``."""


class OnnxBackend:
    """ONNX Runtime on the CPU, one session for every batch size."""

    name = "onnx"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort  # lazy: only when this backend is used

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise PayloadError(
                "bad_artifact",
                f"{path.name} has inputs {inputs} and outputs {outputs}; "
                f"expected {INPUT_NAME!r} -> {OUTPUT_NAME!r}",
            )
        self._outputs = [OUTPUT_NAME]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch."""
        return np.asarray(self.session.run(self._outputs, {INPUT_NAME: batch})[0])


class LiteRTBackend:
    """LiteRT (ai_edge_litert) interpreters, one per batch-size bucket.

    Resizing an interpreter reallocates its tensors, so batches are padded up to
    the next bucket and each bucket keeps its own allocated interpreter. Each
    interpreter holds its own packed weights (~15 MB for the demo BiLSTM), so
    the buckets are few: padding wastes some compute only when load is light.
    """

    name = "litert"

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter  # lazy

        self._factory = Interpreter
        self._content = path.read_bytes()
        self._threads = threads
        probe = Interpreter(model_content=self._content, num_threads=threads)
        inputs, outputs = probe.get_input_details(), probe.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise PayloadError(
                "bad_artifact",
                f"{path.name} has {len(inputs)} inputs, {len(outputs)} outputs; expected one each",
            )
        signature = inputs[0].get("shape_signature", inputs[0]["shape"])
        self._dynamic = int(signature[0]) == -1
        self._fixed = int(inputs[0]["shape"][0])
        self._shape = tuple(int(d) for d in inputs[0]["shape"][1:])
        self._slots: dict[int, tuple[Any, int, int]] = {}

    def _slot(self, size: int) -> tuple[Any, int, int]:
        slot = self._slots.get(size)
        if slot is None:
            interpreter = self._factory(model_content=self._content, num_threads=self._threads)
            index = interpreter.get_input_details()[0]["index"]
            if self._dynamic:
                interpreter.resize_tensor_input(index, [size, *self._shape], strict=False)
            interpreter.allocate_tensors()
            slot = (interpreter, index, interpreter.get_output_details()[0]["index"])
            self._slots[size] = slot
        return slot

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (padded to its bucket, split into chunks above the largest)."""
        n = batch.shape[0]
        step = self._fixed if not self._dynamic else BUCKETS[-1]
        if n > step:
            return np.concatenate([self.predict(batch[i : i + step]) for i in range(0, n, step)])
        size = step if not self._dynamic else next(b for b in BUCKETS if b >= n)
        return self._run(batch, size)[:n]

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        if batch.shape[0] < size:
            pad = np.zeros((size - batch.shape[0], *batch.shape[1:]), np.float32)
            batch = np.concatenate([batch, pad])
        interpreter, index, output = self._slot(size)
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(output))


class TensorflowBackend:
    """The Keras model itself (imports TensorFlow: slow to load, large in memory)."""

    name = "tensorflow"

    def __init__(self, path: Path, threads: int) -> None:
        try:  # the training package checks the Keras model against spec.json
            from training.artifact import load_keras_model
        except ImportError:  # a classifier-only install: plain Keras, still safe_mode
            import keras

            self.model = keras.saving.load_model(path, compile=False, safe_mode=True)
        else:
            self.model = load_keras_model(path.parent)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch in inference mode."""
        return np.asarray(self.model(batch, training=False))


_CLASSES: dict[str, type[OnnxBackend] | type[LiteRTBackend] | type[TensorflowBackend]] = {
    "onnx": OnnxBackend,
    "litert": LiteRTBackend,
    "tensorflow": TensorflowBackend,
}


def open_backend(model_dir: Path, name: str, threads: int) -> Backend:
    """Load one named backend from ``model_dir``; :class:`PayloadError` if it cannot."""
    path = model_dir / FILES[name]
    if not path.is_file():
        raise PayloadError("bad_artifact", f"{model_dir} has no {FILES[name]} for backend {name}")
    try:
        return _CLASSES[name](path, threads)
    except PayloadError:
        raise
    except Exception as exc:  # any loader failure means a bad artifact
        raise PayloadError("bad_artifact", f"{path} does not load as {name}: {exc}") from exc


def time_backend(backend: Backend, sample: np.ndarray, repeats: int = 5) -> float:
    """Best seconds per window over ``repeats`` runs of ``sample`` (after a warm-up)."""
    backend.predict(sample)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        backend.predict(sample)
        best = min(best, time.perf_counter() - started)
    return best / sample.shape[0]


def choose_backend(
    model_dir: Path, window: int, channels: int, settings: ClassifierSettings
) -> tuple[Backend, dict[str, float]]:
    """The backend to serve with, and the microseconds per window ``auto`` measured.

    ``auto`` loads every lightweight export present and times batches of 1, 8,
    64 and ``--max-batch`` windows. The runtime fastest at ``--max-batch``
    serves; when the other one is faster for the smaller sizes, both are kept
    in a :class:`SplitBackend` (e.g. ONNX Runtime for single windows at light
    load, LiteRT for full batches under load). TensorFlow only when chosen
    (``--backend tensorflow``), or with ``--allow-tensorflow`` when no
    lightweight export loads: a reload that silently fell back to it cost
    +620 MB of resident memory (issue 12).
    """
    threads, batch = settings.threads, settings.max_batch
    if settings.backend != "auto":
        return open_backend(model_dir, settings.backend, threads), {}
    candidates: list[Backend] = []
    problems: list[str] = []
    for name in LIGHT:
        if (model_dir / FILES[name]).is_file():
            try:
                candidates.append(open_backend(model_dir, name, threads))
            except PayloadError as exc:
                problems.append(str(exc))
    if not candidates:
        return _fallback(model_dir, problems, settings), {}
    sizes = sorted({1, 8, 64, max(1, min(batch, 256))} & set(range(1, batch + 1)))
    timings: dict[str, float] = {}
    for b in candidates:
        for size in sizes:
            sample = np.zeros((size, window, channels), np.float32)
            timings[f"{b.name}_batch{size}"] = 1e6 * time_backend(b, sample, repeats=3)
    winners = [min(candidates, key=lambda b: timings[f"{b.name}_batch{n}"]) for n in sizes]
    chosen: Backend = winners[-1]
    if len(candidates) == 2 and len({w.name for w in winners}) == 2 and winners[0] is not chosen:
        # one runtime is faster for small batches, the other for large: keep both
        cutoff = next(n for n, w in zip(sizes, winners, strict=True) if w is chosen)
        if all(w is chosen for n, w in zip(sizes, winners, strict=True) if n >= cutoff):
            chosen = SplitBackend(winners[0], chosen, cutoff)
    logger.info("backend timings (us per window): %s -> %s", timings, chosen.name)
    del candidates, winners
    release_memory()
    return chosen, timings


def _fallback(model_dir: Path, problems: list[str], settings: ClassifierSettings) -> Backend:
    """TensorFlow when no lightweight export loads, if allowed; else a clear refusal."""
    found = "; ".join(problems) or f"neither {ONNX_FILE} nor {TFLITE_FILE} is there"
    if not settings.allow_tensorflow:
        raise PayloadError(
            "bad_artifact",
            f"{model_dir} has no loadable ONNX Runtime or LiteRT export ({found}); "
            "the TensorFlow fallback is off (--allow-tensorflow, or --backend tensorflow)",
        )
    logger.warning("no lightweight export loads (%r); trying TensorFlow", found)
    return open_backend(model_dir, "tensorflow", settings.threads)


class SplitBackend:
    """Small batches on one runtime, batches of ``cutoff`` windows or more on the other."""

    def __init__(self, small: Backend, large: Backend, cutoff: int) -> None:
        self.small, self.large, self.cutoff = small, large, cutoff
        self.name = f"{small.name}+{large.name}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on the runtime that is faster for its size."""
        return (self.large if batch.shape[0] >= self.cutoff else self.small).predict(batch)


def release_memory() -> None:
    """Give freed heap back to the OS (glibc), e.g. after dropping the slower backend."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
