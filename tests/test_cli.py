"""The command line: every command and option documented, names in sync with the library, clear errors."""

from __future__ import annotations

import pytest

from mimic.builders.configs import CONFIGS
from mimic.builders.mimic_train import TRAIN_TASKS
from mimic.cli import COMMANDS, build_parser, main
from mimic.commands.data import BENCH_CONFIG_NAMES, TRAIN_TASK_NAMES


def test_config_names_match_the_library():
    assert BENCH_CONFIG_NAMES == list(CONFIGS)
    assert TRAIN_TASK_NAMES == list(TRAIN_TASKS)


def test_every_command_and_option_has_help(capsys):
    parser = build_parser()
    assert main([]) == 0
    top = capsys.readouterr().out
    for name, cmd in COMMANDS.items():
        assert cmd.summary, name
        assert name.split()[0] in top
        with pytest.raises(SystemExit) as done:
            parser.parse_args([*name.split(), "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for action in _actions(parser, name):
            assert action.help, f"mimic {name}: option {action.dest} has no help"
            assert action.dest in text.replace("-", "_") or action.metavar in text


def _actions(parser, name):
    sub = parser
    for word in name.split():
        choices = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices
        sub = choices[word]
    return [a for a in sub._actions if a.dest != "help"]


def test_unknown_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["generate", "--config", "countin", "--out", "x.jsonl"])
    assert done.value.code == 2
    assert "invalid choice: 'countin'" in capsys.readouterr().err


def test_source_names_match_the_library():
    from mimic.builders.reading import SOURCES
    from mimic.commands.data import SOURCES as CLI_SOURCES

    assert tuple(CLI_SOURCES) == SOURCES


def test_the_library_reads_annotations_without_the_cli():
    # The builders read annotations through mimic.builders, never through the command modules.
    import subprocess
    import sys

    code = ("import sys, mimic.builders.mimic_bench, mimic.builders.mimic_train; "
            "sys.exit(any(m.startswith('mimic.commands') or m == 'mimic.cli' for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_one_registry_class_and_one_option_helper():
    from mimic.eval import api
    from mimic.eval.metrics import METRICS
    from mimic.options import option
    from mimic.registry import Registry, UnknownNameError

    for registry in (COMMANDS, api.MODELS, METRICS):
        assert isinstance(registry, Registry)
    build_parser()  # fills COMMANDS
    assert "build bench" in COMMANDS and "eval" in COMMANDS.names()
    with pytest.raises(UnknownNameError, match="Did you mean 'eval'"):
        COMMANDS.get("evl")
    import mimic.cli

    assert mimic.cli.opt is option and api.option is option


def test_an_option_without_help_cannot_be_declared():
    from mimic.options import option

    with pytest.raises(TypeError):
        option(3)  # help is a required keyword
