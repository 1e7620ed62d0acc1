"""The firmware's C packet encoder, compiled with gcc on the host, against the shared vectors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"


def _c_float(value: float) -> str:
    return f"{value!r}f" if "." in repr(value) or "e" in repr(value) else f"{value!r}.0f"


def write_vectors_header(vectors: dict, path: Path) -> None:
    """Turn firmware/test_vectors.json into a C header of the valid vectors."""
    lines = [
        "/* Generated from firmware/test_vectors.json by tests/gateway/test_firmware_vectors.py */",
        "#include <stdint.h>",
        "struct batched_vector { const char *name; uint16_t seq; uint32_t time_ms;",
        "  uint16_t rate_dhz; size_t n; float samples[255][9]; const char *hex; };",
        "struct legacy_vector { const char *name; float sample[9]; int padded; const char *hex; };",
    ]
    batched, legacy = [], []
    for case in vectors["valid"]:
        if case["format"] == "batched":
            rows = ", ".join(
                "{" + ", ".join(_c_float(x) for x in row) + "}" for row in case["input"]
            )
            batched.append(
                f'  {{"{case["name"]}", {case["seq"]}u, {case["device_time_ms"]}u, '
                f'{case["rate_dhz"]}u, {len(case["input"])}, {{{rows}}}, "{case["hex"]}"}}'
            )
        else:
            sample = ", ".join(_c_float(x) for x in case["input"])
            legacy.append(
                f'  {{"{case["name"]}", {{{sample}}}, {int(case["padded"])}, "{case["hex"]}"}}'
            )
    lines.append(
        "static const struct batched_vector BATCHED[] = {\n" + ",\n".join(batched) + "\n};"
    )
    lines.append("static const struct legacy_vector LEGACY[] = {\n" + ",\n".join(legacy) + "\n};")
    path.write_text("\n".join(lines) + "\n")


def test_c_encoder_matches_the_shared_vectors(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is required to test the firmware packet encoder (apt-get install gcc)")
    vectors = json.loads((FIRMWARE / "test_vectors.json").read_text())
    write_vectors_header(vectors, tmp_path / "vectors.h")
    binary = tmp_path / "test_packet"
    sources = sorted(str(p) for p in (FIRMWARE / "test").glob("*.c"))
    assert sources, "no C tests in firmware/test"
    build = subprocess.run(
        [
            gcc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            f"-I{tmp_path}",
            *sources,
            "-o",
            str(binary),
            "-lm",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, f"gcc failed:\n{build.stderr}"
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"C vector test failed:\n{run.stdout}{run.stderr}"
    n_valid = len(vectors["valid"])
    assert f"{n_valid} vectors, 0 failures" in run.stdout
