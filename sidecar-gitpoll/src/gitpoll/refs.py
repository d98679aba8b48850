"""Choosing the commit a ref names, from `git ls-remote` output (pure)."""

from __future__ import annotations

from dataclasses import dataclass

PEELED_SUFFIX = "^{}"


@dataclass(frozen=True, slots=True)
class RemoteHead:
    refname: str
    """The full name to fetch (`refs/heads/main`, `refs/tags/v1`, `HEAD`)."""
    commit: str
    """The commit it points at, annotated tags peeled."""


class RefNotFound(LookupError):
    pass


def ls_remote_patterns(ref: str | None) -> list[str]:
    """The patterns to give `git ls-remote` so the answer holds `ref` and,
    for an annotated tag, the commit it points at."""
    if ref is None:
        return ["HEAD"]
    return [ref, ref + PEELED_SUFFIX]


def parse_ls_remote(output: str) -> dict[str, str]:
    """`<sha>\\t<refname>` lines into {refname: sha}; `ref:` symref lines are skipped."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, tab, name = line.partition("\t")
        if tab and not sha.startswith("ref:"):
            refs[name.strip()] = sha.strip()
    return refs


def candidate_names(ref: str) -> list[str]:
    """Full ref names `ref` may mean, in git's own order of preference."""
    if ref == "HEAD" or ref.startswith("refs/"):
        return [ref]
    return [ref, f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"]


def select_head(ref: str | None, advertised: dict[str, str]) -> RemoteHead:
    """The advertised ref `ref` names (HEAD when None), peeled to its commit."""
    for name in candidate_names(ref or "HEAD"):
        if name in advertised:
            commit = advertised.get(name + PEELED_SUFFIX, advertised[name])
            return RemoteHead(refname=name, commit=commit)
    if ref is None:
        raise RefNotFound("the remote has no default branch (HEAD); give --ref")
    raise RefNotFound(f"no branch or tag named {ref!r} on the remote")
