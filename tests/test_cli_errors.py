"""Every CLI command's bad input: one message naming the file / key / line and the fix, exit 1, no traceback;
`--version`; a help text on every flag; a generate directory whose first start produced nothing takes a corrected config."""

from __future__ import annotations

import argparse

import pytest

from selfplay.cli import build_parser, main
from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, read_candidates, write_job


def every_parser(parser: argparse.ArgumentParser, name: str = "selfplay"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from every_parser(sub, f"{name} {sub_name}")


def test_every_flag_of_every_command_has_a_help_text():
    missing = [f"{name} {action.option_strings or action.dest}" for name, parser in every_parser(build_parser())
               for action in parser._actions
               if not action.help and not isinstance(action, argparse._SubParsersAction)]
    assert missing == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("selfplay ")


@pytest.mark.parametrize("command", [["run"], ["generate", "--config"], ["prm-label", "--config"]])
def test_bad_toml_names_the_file_and_line(tmp_path, capsys, command):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nname = 'x'\nk = = 3\n")
    code = main([*command, str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "bad.toml" in err and "line 3" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["run"], ["generate", "--config"], ["prm-label", "--config"]])
def test_a_missing_config_file_is_one_message(tmp_path, capsys, command):
    code = main([*command, str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "none.toml does not exist" in err and "Traceback" not in err


def test_a_malformed_set_override_says_how_to_write_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[model]\nname = 'micro-llama'\nbackend = 'local'\n[tasks]\nbuiltin = 'addition'\n")
    code = main(["run", str(config), "--out", str(tmp_path / "o"), "--set", "loop.rounds"])
    err = capsys.readouterr().err
    assert code == 1 and "KEY=VALUE" in err


def test_report_of_a_directory_without_a_store_is_one_message(tmp_path, capsys):
    code = main(["report", str(tmp_path)])
    assert code == 1 and "run.db" in capsys.readouterr().err


def test_a_generate_dir_whose_first_start_failed_takes_a_corrected_config(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9/v1", tasks=3, k=2)  # nothing listens there
    first = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress")
    assert first.returncode == 1 and "cannot reach" in first.stderr
    with MockServer(seed=1) as server:
        config.write_text(config.read_text().replace("http://127.0.0.1:9/v1", server.base_url).replace("k = 2", "k = 3"))
        second = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress")
        assert second.returncode == 0, second.stderr
        assert len(read_candidates(tmp_path / "o")) == 9
        refused = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--k", "2")
    assert refused.returncode == 1 and "generate.k" in refused.stderr  # once it produced, k is pinned


def test_a_flag_that_breaks_a_config_check_is_one_message(tmp_path, capsys):
    code = main(["demo", "--quick", "--rounds", "-1", "--out", str(tmp_path / "d"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "loop.rounds" in err and "greater than or equal to 0" in err and "Traceback" not in err
