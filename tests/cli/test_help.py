"""Help that reads well: no Python type names, no value metavar on flags, help text everywhere."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from initlab.cli import app


def _paths(group, prefix=()):
    """Every command's words, groups' subcommands included (``mup coord-check``)."""
    for name, command in sorted(group.commands.items()):
        yield " ".join((*prefix, name))
        if hasattr(command, "commands"):
            yield from _paths(command, (*prefix, name))


COMMANDS = list(_paths(typer.main.get_command(app)))


def _command(path):
    command = typer.main.get_command(app)
    for word in path.split():
        command = command.commands[word]
    return command


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_names_values_not_python_types(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for type_name in ("<str>", "<int>", "<float>", "<bool>", "<path>", "list[", "Optional", "NoneType"):
        assert type_name not in result.stdout, f"{command} --help shows {type_name}"
    for flag in ("--help", "--json", "--probe", "--compare", "--critical"):
        match = re.search(rf"{flag}\s+(\S+)", result.stdout)
        if match and flag in result.stdout.split():
            assert not match.group(1).isupper(), f"{command}: the flag {flag} shows a value metavar {match.group(1)}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(command):
    missing = [param.name for param in _command(command).params if not param.help]
    assert missing == []


def test_repeatable_options_say_so():
    click_command = typer.main.get_command(app).commands["train"]
    repeatable = {param.name: param.help for param in click_command.params if getattr(param, "multiple", False)}
    assert set(repeatable) >= {"init", "layer_init", "init_rule"}
    assert all("repeatable" in text for text in repeatable.values())
