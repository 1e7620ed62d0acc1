"""The trainer service stays small: TensorFlow is loaded by its training process only.

Read with ``ast`` (nothing imported) like tests/core/test_layering.py, and
checked for real in a fresh interpreter: building the service must not load
TensorFlow or Keras (a ``train`` would otherwise hold a gigabyte in the
service for as long as it runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

WORKER = "services/trainer/worker.py"
HEAVY = {"tensorflow", "keras", "tf2onnx", "onnx", "pandas", "pyarrow"}
# What the service may use of training/: parameters, their error, the manifest rule (all light).
LIGHT_TRAINING = {"training.params", "training.errors", "training.manifests"}


def imported(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth (absolute imports)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_only_the_worker_imports_training_code_or_tensorflow() -> None:
    bad = []
    for path in sorted((REPO / "services/trainer").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == WORKER:
            continue
        for module in imported(path):
            top = module.split(".")[0]
            if top in HEAVY or (top == "training" and module not in LIGHT_TRAINING):
                bad.append(f"{rel} imports {module}")
    assert not bad, "only the training process loads TensorFlow:\n" + "\n".join(bad)


def test_building_the_service_loads_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "from services.trainer.app import build\n"
        "from services.trainer.settings import TrainerSettings\n"
        "import tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "build(TrainerSettings(models_dir=d / 'm', data_dir=d / 'd'))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'pandas', 'pyarrow'})\n"
        "print(heavy[:5])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
