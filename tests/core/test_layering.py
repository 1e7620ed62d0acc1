"""The layers stay visible: who may import whom, and who may build a topic string.

Read with ``ast`` from the sources (nothing is imported), so a violation is
found even in a module no test loads:

- a service never imports another service (they talk over MQTT);
- the shared package ``imu_har`` imports no service, no ``training``, and none
  of TensorFlow, Keras, bleak or Streamlit (every service installs only what it
  needs);
- the classifier's serving path imports TensorFlow, Keras or ``training`` only
  inside its explicit fallback backend;
- no module outside ``imu_har/protocol`` builds a topic string: topics come from
  the templates in ``imu_har.protocol.topics``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("imu_har", "services", "training", "bench", "deploy")
HEAVY = {"tensorflow", "keras", "bleak", "streamlit", "tf2onnx", "onnx"}
# (module, enclosing class or function) where the classifier may load TensorFlow.
TF_FALLBACK = {("services/classifier/backends.py", "TensorflowBackend")}
# A string that is (part of) a topic: a known last level after a '/', a root
# 'har/...' literal, a '+' level, or a service-topic prefix.
TOPIC_LIKE = re.compile(
    r"/(imu|window|prediction|status|truth|rep|set|workout|cmd|reply|spec|config)$"
    r"|^har/|/\+/|^\+/|/\+$|^service/|/service/|/dashboard/|(?<!^\$SYS)/#$|^\$share/"
)


def sources(*tops: str) -> Iterator[Path]:
    """Every Python file under the given top-level folders."""
    for top in tops:
        yield from sorted((REPO / top).rglob("*.py"))


def rel(path: Path) -> str:
    """``path`` relative to the repository, with forward slashes."""
    return path.relative_to(REPO).as_posix()


def imports(tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    """``(imported module, names of the enclosing classes/functions)`` for every import."""

    def walk(node: ast.AST, scope: list[str]) -> Iterator[tuple[str, list[str]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, scope
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                yield child.module, scope
            inner = scope
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [*scope, child.name]
            yield from walk(child, inner)

    yield from walk(tree, [])


def parsed(path: Path) -> ast.Module:
    """The module's syntax tree."""
    return ast.parse(path.read_text(), filename=str(path))


def test_services_do_not_import_each_other() -> None:
    bad = []
    for path in sources("services"):
        own = path.relative_to(REPO / "services").parts[0]
        for module, _ in imports(parsed(path)):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != own:
                bad.append(f"{rel(path)} imports {module}")
    assert not bad, "services talk over MQTT, not imports:\n" + "\n".join(bad)


def test_shared_package_imports_no_app_and_no_heavy_library() -> None:
    bad = []
    for path in sources("imu_har"):
        for module, _ in imports(parsed(path)):
            top = module.split(".")[0]
            if top in {"services", "training"} | HEAVY:
                bad.append(f"{rel(path)} imports {module}")
    assert not bad, "imu_har must stay light and app-agnostic:\n" + "\n".join(bad)


def test_classifier_serving_path_loads_tensorflow_only_in_the_fallback() -> None:
    bad = []
    for path in sources("services/classifier"):
        for module, scope in imports(parsed(path)):
            heavy = module.split(".")[0] in {"tensorflow", "keras", "training", "tf2onnx"}
            if heavy and not any((rel(path), name) in TF_FALLBACK for name in scope):
                bad.append(f"{rel(path)} imports {module} in {'.'.join(scope) or 'module'}")
    assert not bad, "serving never imports TensorFlow outside the fallback:\n" + "\n".join(bad)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def topic_strings(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of every string literal (f-string pieces too) that looks like a topic."""
    tree = parsed(path)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in skip and TOPIC_LIKE.search(text):
            yield node.lineno, text


# Modules that still build topics by hand, being moved to the templates (issue 13);
# each entry goes when its module is fixed, and the test fails on a stale entry.
NOT_YET: set[str] = set()


def test_no_topic_string_is_built_outside_the_protocol_package() -> None:
    bad, offenders = [], set()
    for top in PRODUCT:
        for path in sources(top):
            if rel(path).startswith("imu_har/protocol/"):
                continue
            found = [f"{rel(path)}:{line}: {text!r}" for line, text in topic_strings(path)]
            if found:
                offenders.add(rel(path))
            if rel(path) not in NOT_YET:
                bad += found
    assert not bad, "build topics with imu_har.protocol.topics templates:\n" + "\n".join(bad)
    assert not NOT_YET - offenders, f"fixed, remove from NOT_YET: {sorted(NOT_YET - offenders)}"


@pytest.mark.parametrize(
    "text",
    [
        "har/+/window",
        "/prediction",
        "har/service/+/status",
        "{root}/dashboard/{id}/reply",
        "/#",
        "$share/",
    ],
)
def test_the_topic_detector_sees_hand_built_topics(text: str) -> None:
    assert TOPIC_LIKE.search(text)


@pytest.mark.parametrize("text", ["models/default", "spec.json", "data/recordings", "a/b.parquet"])
def test_the_topic_detector_leaves_paths_alone(text: str) -> None:
    assert not TOPIC_LIKE.search(text)
