"""The pure parts of gitpoll, table-tested: refs, backoff, signatures, errors, URLs."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitpoll.errors import classify_git_failure
from gitpoll.refs import RefNotFound, parse_ls_remote, select_head
from gitpoll.remote import display_endpoint, parse_remote, redact_url
from gitpoll.schedule import Backoff, failure_budget_spent, next_delay, retry_backoff
from gitpoll.webhook import sign, signature_problem

BRANCH = "1" * 40
TAG_OBJECT = "2" * 40
TAG_COMMIT = "3" * 40
LIGHT = "4" * 40

ADVERTISED = parse_ls_remote(
    f"ref: refs/heads/main\tHEAD\n{BRANCH}\tHEAD\n{BRANCH}\trefs/heads/main\n"
    f"{TAG_OBJECT}\trefs/tags/v1\n{TAG_COMMIT}\trefs/tags/v1^{{}}\n{LIGHT}\trefs/tags/light\n"
)


@pytest.mark.parametrize(
    ("ref", "refname", "commit"),
    [
        (None, "HEAD", BRANCH),
        ("main", "refs/heads/main", BRANCH),
        ("refs/heads/main", "refs/heads/main", BRANCH),
        ("v1", "refs/tags/v1", TAG_COMMIT),  # annotated tags are peeled to their commit
        ("light", "refs/tags/light", LIGHT),
    ],
)
def test_a_ref_selects_the_commit_it_names(ref: str | None, refname: str, commit: str) -> None:
    head = select_head(ref, ADVERTISED)
    assert (head.refname, head.commit) == (refname, commit)


def test_a_missing_ref_is_named_in_the_error() -> None:
    with pytest.raises(RefNotFound, match="'nope'"):
        select_head("nope", ADVERTISED)


def test_tags_win_over_branches_of_the_same_name_as_in_git() -> None:
    both = {"refs/heads/x": BRANCH, "refs/tags/x": LIGHT}
    assert select_head("x", both).commit == LIGHT


@given(
    failures=st.integers(min_value=1, max_value=200),
    period=st.floats(min_value=0.01, max_value=3600),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_is_jittered_and_never_slower_than_a_poll(
    failures: int, period: float, jitter: float
) -> None:
    delay = next_delay(period, failures, jitter)
    ceiling = min(period, min(1.0, period) * 2 ** (failures - 1))
    assert ceiling / 2 <= delay <= ceiling <= period


def test_backoff_doubles_until_the_period() -> None:
    backoff = retry_backoff(60)
    ceilings = [backoff.delay(n, jitter=0.999999) for n in range(1, 9)]
    assert [round(c) for c in ceilings] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_healthy_poller_waits_one_period() -> None:
    assert next_delay(60, 0, jitter=0.5) == 60


def test_backoff_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="failure"):
        Backoff(1, 10).delay(0, 0.5)


@pytest.mark.parametrize(
    ("budget", "failures", "spent"),
    [(-1, 10_000, False), (1, 0, False), (1, 1, True), (3, 2, False), (3, 3, True)],
)
def test_failure_budget(budget: int, failures: int, spent: bool) -> None:
    assert failure_budget_spent(budget, failures) is spent


SECRET = b"s3cret"
BODY = b'{"ref":"refs/heads/main"}'


def test_a_github_signature_is_accepted() -> None:
    header = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == header
    assert signature_problem(SECRET, BODY, header) is None
    assert signature_problem(SECRET, BODY, header.upper().replace("SHA256=", "sha256=")) is None


@pytest.mark.parametrize(
    ("secret", "header", "problem"),
    [
        (SECRET, None, "no X-Hub-Signature-256 header"),
        (SECRET, "sha1=abc", "not of the form"),
        (SECRET, sign(b"other", BODY), "signature mismatch"),
        (SECRET, sign(SECRET, BODY + b" "), "signature mismatch"),
        (b"", sign(b"", BODY), "secret file is empty"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    secret: bytes, header: str | None, problem: str
) -> None:
    found = signature_problem(secret, BODY, header)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("fatal: unable to access 'https://x/': Could not resolve host: x", "unreachable"),
        ("fatal: unable to access 'http://127.0.0.1:1/r/': Failed to connect", "unreachable"),
        ("fatal: Authentication failed for 'https://h/r.git/'", "auth"),
        (
            "fatal: could not read Username for 'https://h': terminal prompts disabled",
            "auth",
        ),
        ("git@h: Permission denied (publickey).\nfatal: Could not read from remote", "auth"),
        ("Host key verification failed.\nfatal: Could not read from remote", "host_key"),
        ("fatal: '/srv/x.git' does not appear to be a git repository", "not_found"),
        ("fatal: repository 'http://127.0.0.1:8080/git/missing.git/' not found", "not_found"),
        ("fatal: couldn't find remote ref refs/heads/x", "ref_not_found"),
        ("error: unable to write file: No space left on device", "volume_full"),
        ("fatal: Unable to create '/v/.git/x.lock': Read-only file system", "volume_read_only"),
        (
            "error: could not lock config file /v/.git/config: Permission denied",
            "volume_permission",
        ),
        ("fatal: something nobody expected", "git"),
    ],
)
def test_git_failures_are_classified(stderr: str, reason: str) -> None:
    error = classify_git_failure("fetch", stderr, 128)
    assert error.reason == reason
    assert error.message.startswith("fetch: ")
    assert "\n" not in error.message, "one line per event"


def test_error_messages_never_show_url_credentials() -> None:
    error = classify_git_failure(
        "fetch", "fatal: unable to access 'https://bob:hunter2@h/r/': Failed to connect", 128
    )
    assert "hunter2" not in error.message
    assert "https://***@h/r/" in error.message


def test_https_credentials_are_moved_out_of_the_url() -> None:
    remote = parse_remote("https://bob:p%40ss@git.example:8443/org/site.git")
    assert remote.url == "https://git.example:8443/org/site.git"
    assert (remote.url_username, remote.url_password) == ("bob", "p@ss")
    assert "p@ss" not in repr(remote) and "p%40ss" not in remote.display


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("git@github.com:org/site.git", "ssh"),
        ("ssh://git@host:2222/org/site.git", "ssh"),
        ("file:///srv/site.git", "file"),
        ("git://host/site.git", "git"),
        ("./relative/site.git", "local"),
    ],
)
def test_repository_kinds(text: str, kind: str) -> None:
    assert parse_remote(text).kind == kind


def test_unsupported_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="ftp"):
        parse_remote("ftp://host/site.git")


def test_notify_urls_are_logged_without_tokens() -> None:
    shown = display_endpoint("https://u:p@hooks.example/services/T0/B1?token=abc")
    assert shown == "https://hooks.example/services/T0/B1"
    assert (
        redact_url("see https://u:p@h/x and http://v@h/y")
        == "see https://***@h/x and http://***@h/y"
    )
