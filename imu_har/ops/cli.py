"""The ``har`` command: one subcommand per part of the system.

Subcommands are the entry points of group ``imu_har.commands`` declared in
``pyproject.toml`` (``gateway = "services.ble_gateway.app:main"``), so this
package names no app: a service or a plug-in in another distribution adds a
command by declaring one. A subcommand is imported only when it runs, so
``har windower`` never loads TensorFlow; its help line is read from the entry
function's docstring without importing it, and a missing optional dependency
names the extra to install.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata

GROUP = "imu_har.commands"
DISTRIBUTION = "imu-har"


@dataclass(frozen=True)
class Command:
    """One ``har`` subcommand: the module and function of its entry point."""

    name: str
    module: str
    function: str

    def installed(self) -> bool:
        """Whether the module can be found (without importing it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def summary(self) -> str:
        """The first line of the entry function's docstring, without its ``har x``: prefix."""
        try:
            spec = importlib.util.find_spec(self.module)
            source = open(spec.origin).read() if spec and spec.origin else ""  # noqa: SIM115
            tree = ast.parse(source)
        except (OSError, SyntaxError, ModuleNotFoundError, ValueError):
            return ""
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == self.function:
                line = (ast.get_docstring(node) or "").strip().splitlines()[:1]
                return line[0].split(": ", 1)[-1] if line else ""
        return ""

    def load(self) -> Callable[[list[str]], int | None]:
        """Import the module and return the entry function."""
        return getattr(importlib.import_module(self.module), self.function)


@cache
def commands() -> dict[str, Command]:
    """Every installed subcommand, in the order ``pyproject.toml`` declares them."""
    found: dict[str, Command] = {}
    for entry in metadata.entry_points(group=GROUP):
        module, _, function = entry.value.partition(":")
        found.setdefault(entry.name, Command(entry.name, module.strip(), function.strip()))
    return found


def _extra_for(name: str) -> str:
    try:
        extras = metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []
    except metadata.PackageNotFoundError:
        extras = []
    return name if name in extras else "all"


def usage() -> str:
    """The top-level help text."""
    lines = ["usage: har <command> [options]   (har <command> --help for its options)", ""]
    lines += [f"  {c.name:<13} {c.summary()}" for c in commands().values()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand's ``main(argv)``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    command = commands().get(name)
    if command is None:
        print(f"har: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        entry = command.load()
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"services", "training", "imu_har"}:
            raise
        hint = f"pip install 'imu-har[{_extra_for(name)}]'"
        print(
            f"har {name}: missing dependency {exc.name!r}; install it with: {hint}", file=sys.stderr
        )
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
