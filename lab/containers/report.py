"""What the run prints: per pattern, what it built, what it ran (and how
the manifests were adapted for podman), and one PASS or FAIL line per
check; a summary at the end."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from ..verify import CheckFailed
from .engine import PodmanError
from .manifests import ManifestError

EXPECTED_FAILURES = (CheckFailed, PodmanError, ManifestError, OSError, ValueError, KeyError)


@dataclass(frozen=True, slots=True)
class Outcome:
    title: str
    passed: bool
    detail: str


def _say(label: str, text: str) -> None:
    indent = " " * 10
    wrapped = textwrap.fill(
        text,
        width=100,
        initial_indent=f"{label:<10}",
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )
    print(wrapped, flush=True)


@dataclass
class Report:
    pattern: str
    source: str
    """What it plays, e.g. k8s/sidecar."""
    built: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def heading(self, what: str) -> None:
        print(f"\n== {self.pattern} ({self.source}): {what}", flush=True)

    def build(self, text: str) -> None:
        self.built.append(text)
        _say("built", text)

    def adapted(self, notes: list[str]) -> None:
        for note in notes:
            _say("adapted", note)

    def run(self, text: str) -> None:
        self.ran.append(text)
        _say("ran", text)

    def check(self, title: str, run: Callable[[], str]) -> bool:
        """Run one check: it returns a short detail, or raises what it saw."""
        try:
            detail = run()
        except EXPECTED_FAILURES as error:
            return self.record(title, False, str(error))
        return self.record(title, True, detail)

    def record(self, title: str, passed: bool, detail: str) -> bool:
        self.outcomes.append(Outcome(title, passed, detail))
        verdict = "PASS" if passed else "FAIL"
        line = f"{verdict}  {self.pattern}: {title}"
        if detail:
            first, _, rest = detail.partition("\n")
            line += f" ({first})" if passed else f": {first}"
            if rest and not passed:
                line += "\n" + textwrap.indent(rest, " " * 6)
        print(line, flush=True)
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    def summary(self) -> str:
        good = sum(o.passed for o in self.outcomes)
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}  {self.pattern:<15} {good}/{len(self.outcomes)} checks passed"
