"""Flags, their environment twins, and usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitpoll.cli import build_parser, load_config
from gitpoll.metrics import Metrics
from support.docs import readme, undocumented_families, undocumented_options
from support.gitpoll import GITPOLL
from support.processes import run_command

REQUIRED = ["--repo", "https://git.example/site.git", "--root", "/srv/www"]


def test_defaults() -> None:
    config = load_config(REQUIRED, {})
    assert config.remote.url == "https://git.example/site.git"
    assert config.root == Path("/srv/www")
    assert (config.link, config.period, config.depth, config.max_failures) == (
        "current",
        60.0,
        1,
        -1,
    )
    assert config.ref is None and not config.one_time and config.http_bind is None


def test_every_flag_has_an_environment_twin_and_the_flag_wins() -> None:
    environ = {
        "GITPOLL_REPO": "https://env.example/site.git",
        "GITPOLL_ROOT": "/env/root",
        "GITPOLL_PERIOD": "500ms",
        "GITPOLL_DEPTH": "0",
        "GITPOLL_ONE_TIME": "true",
        "GITPOLL_HTTP_BIND": ":8080",
        "GITPOLL_LOG_FORMAT": "json",
    }
    from_env = load_config([], environ)
    assert from_env.remote.url == "https://env.example/site.git"
    assert from_env.period == 0.5 and from_env.depth == 0 and from_env.one_time
    assert from_env.http_bind is not None and from_env.http_bind.port == 8080
    assert from_env.log_format == "json"

    flag_wins = load_config(["--period", "2", "--root", "/flag/root"], environ)
    assert flag_wins.period == 2.0 and flag_wins.root == Path("/flag/root")


def test_git_repo_is_accepted_for_the_classic_manifest() -> None:
    config = load_config(["--root", "/r"], {"GIT_REPO": "https://classic.example/x.git"})
    assert config.remote.url == "https://classic.example/x.git"
    preferred = load_config(
        ["--root", "/r"],
        {"GIT_REPO": "https://classic.example/x.git", "GITPOLL_REPO": "/srv/own.git"},
    )
    assert preferred.remote.url == "/srv/own.git"


def test_a_commit_ref_is_recognised() -> None:
    assert load_config([*REQUIRED, "--ref", "a" * 40], {}).ref_is_commit
    assert not load_config([*REQUIRED, "--ref", "main"], {}).ref_is_commit


def test_the_logged_configuration_has_no_secrets(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2\n")
    config = load_config(
        [
            "--repo",
            "https://bob:urlsecret@git.example/site.git",
            "--root",
            "/r",
            "--password-file",
            str(password),
            "--notify-url",
            "https://hooks.example/x?token=tok",
        ],
        {},
    )
    shown = repr(config.redacted())
    assert "urlsecret" not in shown and "hunter2" not in shown and "tok" not in shown
    assert str(password) in shown


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--root", "/r"], {}, "required: --repo"),
        (["--repo", "x"], {}, "required: --root"),
        ([*REQUIRED, "--period", "soon"], {}, "is not a duration"),
        ([*REQUIRED, "--period", "0"], {}, "must be greater than zero"),
        (REQUIRED, {"GITPOLL_PERIOD": "-3"}, "environment variable GITPOLL_PERIOD"),
        (REQUIRED, {"GITPOLL_ONE_TIME": "maybe"}, "GITPOLL_ONE_TIME"),
        ([*REQUIRED, "--depth", "-1"], {}, "must be 0 or more"),
        ([*REQUIRED, "--max-failures", "0"], {}, "-1 (never exit) or at least 1"),
        ([*REQUIRED, "--link", "a/b"], {}, "plain file name"),
        ([*REQUIRED, "--http-bind", "8080"], {}, "is not HOST:PORT"),
        ([*REQUIRED, "--log-format", "xml"], {}, "invalid choice"),
        ([*REQUIRED, "--password-file", "/nonexistent"], {}, "not a readable file"),
        ([*REQUIRED, "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--repo", "ftp://h/x", "--root", "/r"], {}, "unsupported scheme"),
        (
            ["--repo", "/srv/x.git", "--root", "/r", "--username", "bob"],
            {},
            "apply to https repositories only",
        ),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_config(argv, environ)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: gitpoll")
    assert message in err


def test_the_installed_command_reports_usage_errors_without_a_traceback() -> None:
    result = run_command(GITPOLL, "--period", "x")
    assert result.returncode == 2
    assert "usage: gitpoll" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_every_flag_with_its_environment_variable() -> None:
    result = run_command(GITPOLL, "--help", check=True)
    text = " ".join(result.stdout.split())
    for flag in ("--repo", "--ref", "--period", "--webhook-secret-file", "--exec-on-sync"):
        assert flag in text
    assert "env GITPOLL_REPO or GIT_REPO" in text
    assert "env GITPOLL_PERIOD; default 60.0" in text


def test_the_readme_documents_every_flag_environment_variable_and_metric() -> None:
    text = readme("sidecar-gitpoll")
    assert undocumented_options(build_parser(), text) == []
    assert undocumented_families(Metrics().registry.collect(), text) == []
