"""The command layer: one module per command, each only declaring its options, calling one
function of the pipeline and handing the outcome to the console.

``COMMANDS`` lists them (name, module, one-line summary) so that ``toolkit.cli`` can assemble
the app lazily: a run imports only the module of the command it runs, and the top-level help
imports none. A new command is a module here exposing ``command`` and a row in this table.
"""

from __future__ import annotations


class CommandEntry:
    """One command: its name, the module defining ``command``, its one-line summary.

    A plain class, not a dataclass: it is built on every start, and a dataclass costs as much
    as a few modules' imports there (bench/render.py).
    """

    __slots__ = ("module", "name", "summary")

    def __init__(self, name: str, module: str, summary: str) -> None:
        self.name = name
        self.module = module
        self.summary = summary


COMMANDS: tuple[CommandEntry, ...] = (
    CommandEntry(
        "list",
        "toolkit.commands.list_",
        "Print the build identifiers of the matrix (one per line), or their records as JSON.",
    ),
    CommandEntry(
        "render",
        "toolkit.commands.render",
        "Render the Dockerfiles from the templates and versions.json.",
    ),
    CommandEntry(
        "lint",
        "toolkit.commands.lint",
        "Check the rendered Dockerfiles: BuildKit parse, PowerShell syntax, hadolint, sha256 policy.",
    ),
    CommandEntry(
        "bump",
        "toolkit.commands.bump",
        "Resolve the newest Python, pip and get-pip for each line and update versions.json.",
    ),
    CommandEntry(
        "hosts",
        "toolkit.commands.hosts",
        "Print which host builds each target and with which isolation, without building.",
    ),
    CommandEntry(
        "inspect",
        "toolkit.commands.inspect",
        "Check the Windows build hosts over WinRM: build, patch level, Docker, TLS, disk, reboots.",
    ),
    CommandEntry(
        "build",
        "toolkit.commands.build",
        "Build the selected images on their hosts, verify them, and report.",
    ),
    CommandEntry(
        "verify",
        "toolkit.commands.verify",
        "Run the checks on the selected images (tagged by a previous build) on their hosts.",
    ),
    CommandEntry(
        "report",
        "toolkit.commands.report",
        "Write the image-info page of each tag, from a registry or a saved page; check provenance.",
    ),
    CommandEntry(
        "ci-matrix",
        "toolkit.commands.ci_matrix",
        "Print the GitHub Actions matrix: one job per Windows release of the selected builds.",
    ),
    CommandEntry(
        "push",
        "toolkit.commands.push",
        "Push each build's per-release tags to a registry from the engine that built it.",
    ),
    CommandEntry(
        "manifest",
        "toolkit.commands.manifest",
        "Publish each shared tag as a manifest list over the per-release images in a registry.",
    ),
    CommandEntry(
        "library",
        "toolkit.commands.library",
        "Print the official-images library file (Tags, SharedTags, GitCommit, ...) for the builds.",
    ),
)


def find_command(name: str) -> CommandEntry | None:
    return next((c for c in COMMANDS if c.name == name), None)
