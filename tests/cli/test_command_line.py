"""The command line a newcomer expects: --version, --debug anywhere, a help line per command,
a suggestion for a misspelt command, help text on every option."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import slidemap
from slidemap.cli import COMMANDS, build_parser, command_module, main
from slidemap.errors import ConfigError


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"slidemap {slidemap.__version__}"


def test_package_metadata_version_is_the_one_in_the_package() -> None:
    from importlib.metadata import version

    assert version("slidemap") == slidemap.__version__


def test_top_level_help_lists_every_command_with_its_help_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # help lines unwrapped
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    words = " ".join(out.split())  # argparse puts a long command name on a line of its own
    for command in COMMANDS:
        help_line = command_module(command).HELP
        assert "see slidemap" not in help_line
        assert f" {command} {' '.join(help_line.split())} " in words, (command, out)
    assert "--version" in out and "--debug" in out


def test_help_imports_no_heavy_library() -> None:
    """``slidemap --help`` and ``slidemap synth --help`` stay fast: neither imports torch,
    rasterio nor matplotlib (command modules keep heavy imports inside functions)."""
    code = (
        "import sys, json\n"
        "from slidemap.cli import main\n"
        "for argv in (['--help'], ['synth', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'rasterio', 'matplotlib', 'lightning', 'onnxruntime')\n"
        "sys.stderr.write(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


def test_every_option_of_every_command_has_help_text() -> None:
    parser = build_parser(COMMANDS)
    parsers = {"slidemap": parser, **_subparsers(parser)}
    assert set(parsers) == {"slidemap", *COMMANDS}
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, command_parser in parsers.items()
        for action in command_parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


@pytest.mark.parametrize(("typed", "suggested"), [
    ("predcit", "predict"), ("synth_scene", "synth-scene"), ("evalute", "evaluate"),
])
def test_a_misspelt_command_gets_a_suggestion(
    typed: str, suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([typed, "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"unknown command {typed!r}" in err[0] and f"did you mean {suggested!r}" in err[0]


def test_an_unknown_command_without_a_close_match_lists_no_guess(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--debug", "xyzzy"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy'" in err and "did you mean" not in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback(where: str, tmp_path: Path) -> None:
    command = ["export", "--checkpoint", str(tmp_path / "x.ckpt"), "--out", str(tmp_path / "m.txt")]
    argv = ["--debug", *command] if where == "before" else [*command, "--debug"]
    with pytest.raises(ConfigError, match="must end in .onnx"):
        main(argv)


def test_without_debug_an_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--checkpoint", str(tmp_path / "x.ckpt"),
                 "--out", str(tmp_path / "m.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("slidemap export: error:")
