"""The `mimic` command line.

Each command is a typed dataclass of options (`mimic.options.option` fields: every one carries its `help`)
plus a run function, registered with `@command` in the `COMMANDS` registry (`mimic.registry.Registry`).
The parser is generated from the dataclass, so `mimic CMD --help` always explains every option. Command modules import heavy libraries inside their run functions, which keeps
`mimic --help` instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass

from mimic import __version__
from mimic.errors import MimicError
from mimic.options import option
from mimic.registry import Registry

__all__ = ["command", "build_parser", "check_paths", "check_numbers", "check_repo_id", "main", "COMMANDS", "opt"]


@dataclass(frozen=True)
class Command:
    name: str
    options: type
    run: Callable[[typing.Any], int | None]
    summary: str
    lock: str | None = None  # the option naming the output folder this command holds (mimic.locks) while it runs


COMMANDS: Registry[Command] = Registry("command")
# Command options are declared with the one option helper (mimic.options); `opt` is that same function.
opt = option
GROUP_HELP = {
    "build": "Materialize datasets (benchmark, demo, training set) into Hub-layout folders.",
    "diagnose": "The paper's controlled analyses: vision-token pooling, attention by layer, stitching.",
    "export": "Write a benchmark in another tool's format (VLMEvalKit).",
    "lmms-eval": "Run MIMIC inside lmms-eval: its task folder.",
}


def command(name: str, options: type, lock: str | None = None) -> Callable:
    """Register `fn(options_instance)` as `mimic NAME`; its docstring's first line is the summary.

    lock: the option (e.g. "out") naming the folder the command writes; `main` holds an exclusive lock on it
    for the whole command, so a second command into the same folder is refused (`mimic.locks`).
    """

    def wrap(fn):
        doc = (fn.__doc__ or "").strip()
        COMMANDS.register(name)(Command(name, options, fn, doc.splitlines()[0] if doc else "", lock))
        return fn

    return wrap


def check_paths(*checks: tuple[str, str, str]) -> None:
    """Raise ConfigError naming the flag whose file, folder or path ("file", "folder", "path") is not there.

    Commands call it before reading or writing anything, so the message names the flag, not a file deep
    inside the folder it should have been.
    """
    from pathlib import Path

    from mimic.errors import ConfigError

    for flag, value, kind in checks:
        p = Path(value)
        if not {"file": p.is_file, "folder": p.is_dir, "path": p.exists}[kind]():
            raise ConfigError(f"{flag} {value}: {kind} not found")


def check_numbers(*checks: tuple[str, float | None, float, float | None]) -> None:
    """Raise ConfigError naming the flag whose number is not in [low, high] (high None: no upper bound).

    `(flag, value, low, high)`; a value of None (an option left unset) passes. NaN is never in range: a
    comparison with NaN is false, so `not low <= value` catches it too.
    """
    from mimic.errors import ConfigError

    for flag, value, low, high in checks:
        if value is None or (low <= value and (high is None or value <= high)):
            continue
        if high is None:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
        raise ConfigError(f"{flag} must be between {low} and {high}, got {value}")


def check_repo_id(value: str, flag: str = "--repo") -> None:
    """Raise ConfigError unless `value` is a Hub repo id, ORG/NAME (a URL or a path is not one)."""
    import re

    from mimic.errors import ConfigError

    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", value):
        raise ConfigError(f"{flag} must look like ORG/NAME (a Hub repo id, not a URL or a path), got {value!r}")


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        tp, _optional = _unwrap_optional(hints[f.name])
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else (f.default if f.default is not MISSING else f.default_factory())
        help_text = meta.get("help", "")
        if not required and not (default is None or default is False or default == [] or default == ""):
            help_text += f" (default: {default})"
        kwargs: dict = {"help": help_text}
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        origin = typing.get_origin(tp)
        if tp is bool:
            flag = "--" + f.name.replace("_", "-")
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, **kwargs)
            continue
        if origin in (list, tuple):
            (elem,) = typing.get_args(tp)[:1]
            kwargs.update(nargs="+" if required else "*", type=elem)
        else:
            kwargs["type"] = tp
        if meta.get("positional"):
            if not required:
                kwargs.setdefault("nargs", "?")
                kwargs["default"] = default
            parser.add_argument(f.name, **kwargs)
        else:
            flag = "--" + f.name.replace("_", "-")
            parser.add_argument(flag, dest=f.name, required=required, default=default, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="mimic",
        description="MIMIC: controlled multi-image benchmarks and training data for vision-language models.",
    )
    parser.add_argument("--version", action="version", version=f"mimic-vlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, cmd in COMMANDS.items():
        # "build bench" is the subcommand "bench" of a group "build".
        group, _, leaf = name.rpartition(" ")
        target = sub
        if group:
            if group not in groups:
                gp = sub.add_parser(group, help=GROUP_HELP.get(group, ""), description=GROUP_HELP.get(group))
                groups[group] = gp.add_subparsers(dest="command", metavar="SUBCOMMAND", title="subcommands")
            target = groups[group]
        p = target.add_parser(
            leaf,
            help=cmd.summary,
            description=(cmd.run.__doc__ or cmd.summary).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(command=name)
        _add_dataclass_arguments(p, cmd.options)
    return parser


# Command modules in the order of the data flow, which is the order `mimic --help` lists them in.
COMMAND_MODULES = ("data", "generate", "hub", "train_data", "evaluate", "diagnose", "train", "ecosystem")


def _load_commands() -> None:
    # Importing the command modules fills COMMANDS through their decorators.
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"mimic.commands.{name}")


def main(argv: list[str] | None = None) -> int:
    """Run `mimic` with `argv`; returns the exit code. A `MimicError` (bad input) becomes one line on stderr and
    exit code 2; any other exception is a bug and propagates with its traceback (docs/design.md, "Errors")."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None or ns.command not in COMMANDS:
        # A bare group ("mimic build") prints its own help.
        (parser.parse_args([ns.command, "--help"]) if ns.command else parser.print_help())
        return 0
    cmd = COMMANDS.get(ns.command)
    values = {k: v for k, v in vars(ns).items() if k != "command"}
    try:
        options = cmd.options(**values)
        if cmd.lock is None:
            code = cmd.run(options)
        else:
            from mimic.locks import FolderLock

            with FolderLock(getattr(options, cmd.lock), "--" + cmd.lock.replace("_", "-")):
                code = cmd.run(options)
        sys.stdout.flush()  # here, where a closed pipe is caught, rather than at exit
    except BrokenPipeError:
        # `mimic show DIR | head`: the reader has gone, as with any Unix tool that is no error. Python would
        # still flush stdout at exit and fail again, so stdout is pointed at devnull first (Python's docs,
        # "Note on SIGPIPE").
        import io
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # stdout is no file (a test's capture): nothing will flush into the closed pipe
        return 0
    except MimicError as e:
        # One line, whatever the message holds (an HTTP body, a library's multi-line text).
        print(f"mimic {ns.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
