"""`snakemake --lint` for CI: passes when its only findings are the conda/container notes.

Snakemake asks every rule for a conda environment or a container. This project declines on
purpose: its environment is the venv built from the exact pins of requirements.txt, and a conda
file would be a second, unchecked copy of them (docs/snakemake.md, "Linting"). `snakemake --lint`
exits 1 for that note alone, so CI cannot run it bare; this wrapper fails on anything else it
reports, and on anything it cannot read (a Snakefile that does not parse, an unknown format).

Snakemake 9.27's `--lint json` still prints text (its command line does not pass the format
on), so the text is parsed: a block per linted item, "Lints for rule NAME (line N, FILE):" or
"Lints for snakefile FILE:", then one "    * TITLE:" line per finding.

Usage: python tools/snakemake_lint.py [extra snakemake arguments]   (run in the workflow's folder)
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field

# Exact titles of the findings this project accepts, and why (printed with the result).
ACCEPTED = {
    "Specify a conda environment or container for each rule.": (
        "no conda/container directives by design: the venv from requirements.txt is the environment"
    ),
}
ITEM = re.compile(r"^Lints for (?P<item>.+):$")
FINDING = re.compile(r"^    \* (?P<title>.+):$")


@dataclass
class Finding:
    item: str  # "rule NAME (line N, FILE)" or "snakefile FILE"
    title: str
    text: list[str] = field(default_factory=list)  # its lines as Snakemake printed them, title first


def findings(output: str) -> list[Finding]:
    """Each finding in `snakemake --lint`'s text output, in order."""
    found: list[Finding] = []
    item = None
    for line in output.splitlines():
        if match := ITEM.match(line):
            item = match["item"]
        elif (match := FINDING.match(line)) and item is not None:
            found.append(Finding(item, match["title"], [line]))
        elif found and line.startswith("      "):  # the body of the last finding
            found[-1].text.append(line)
    return found


def check(returncode: int, output: str) -> tuple[bool, str]:
    """Whether the lint passes, and what to print."""
    found = findings(output)
    if returncode == 0 and not found:
        return True, "snakemake --lint: no findings"
    if returncode != 0 and not found:
        # Exit 1 without a finding: Snakemake failed before linting (a parse error, a bad config).
        return False, f"{output}\nsnakemake --lint failed (exit {returncode}) without lint findings"
    other = [f for f in found if f.title not in ACCEPTED]
    if other:
        details = "\n".join(f"Lints for {f.item}:\n" + "\n".join(f.text) for f in other)
        return False, f"{details}\n\nsnakemake --lint: {len(other)} finding(s) beyond the accepted ones"
    summary = "; ".join(
        f"{sum(f.title == title for f in found)} x {title!r} ({why})"
        for title, why in ACCEPTED.items()
        if any(f.title == title for f in found)
    )
    return True, f"snakemake --lint: only accepted findings: {summary}"


def main(argv: list[str]) -> int:
    result = subprocess.run(["snakemake", "--lint", *argv], capture_output=True, text=True)
    passed, message = check(result.returncode, result.stdout + result.stderr)
    print(message, file=sys.stdout if passed else sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
