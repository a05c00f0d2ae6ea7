"""Command line: ``python -m llmrec <command> ...``.

Each module with commands exposes ``add_cli(subparsers)``, registering its sub-commands
and setting ``func`` (called with the parsed namespace, returns an exit code or None).
A :class:`~llmrec.errors.LlmrecError` becomes a one-line ``error: ...`` and exit code 2;
Ctrl-C one line and exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from llmrec.errors import LlmrecError

#: Modules that register sub-commands, in the order they appear in ``--help``.
CLI_MODULES = [
    "llmrec.data.assets",
    "llmrec.data.records",
    "llmrec.evaluation.matching",
    "llmrec.report.commands",
    "llmrec.report.runner",
    "llmrec.report.results",
    "llmrec.report.costs",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmrec", description="Are LLMs good movie recommenders?"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a module not written yet
            if err.name == name:
                continue
            raise
        if hasattr(module, "add_cli"):
            module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        code = args.func(args)
    except LlmrecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # the report's runner has ended its kernels by now (llmrec.report.runner.stop_kernels)
        print("interrupted: completed chapters are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130
    return int(code or 0)
