"""The README and docs/ say only what works: links resolve, CLI lines use real subcommands and flags,
`make` targets exist, and the README's local quickstart runs as written.

What is checked: every fenced ```bash, ```sh and ```console block of README.md and docs/*.md (in
console blocks only `$ ` lines are commands; the rest is output). A command line is split into simple
commands at `|`, `&&`, `||`, `;` and `&`; leading `VAR=value` words and shell keywords are skipped.
Every `reranker-server` / `reranker-operator` command (bare or with a path such as `.venv/bin/`) is
compared with the `--help` of the real CLI in this venv, and every `make` with the Makefile.

What is only illustrative and not run: lines that drive a cluster, a registry or the network
(kubectl, helm, kind, docker/podman, curl against a port-forward, `python -m bench...`), and the
`reranker-server serve --model <hub id>` / `prepare` examples that need the Hugging Face hub. Their
`reranker-*` flags and `make` targets are still checked. The one block that runs offline, the
README's "Run the server locally", is extracted and run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
BIN: Final = Path(sys.executable).parent
DOCS: Final = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
#: Link-checked too: the chart's README is where the root README sends Helm users.
LINKED_DOCS: Final = (*DOCS, ROOT / "charts" / "kube-reranker" / "README.md")
SHELL_LANGUAGES: Final = frozenset({"bash", "sh", "console"})
CLIS: Final = ("reranker-server", "reranker-operator")
CONTROL_OPERATORS: Final = frozenset({"|", "||", "&&", ";", "&", "(", ")", ";;"})
REDIRECTIONS: Final = frozenset({">", ">>", "<", "<<", ">&", "<&", "&>", ">|"})
SHELL_KEYWORDS: Final = frozenset(
    {"until", "while", "if", "then", "else", "elif", "do", "done", "fi", "!", "time"}
)
QUICKSTART_HEADING: Final = "## Run the server locally"
DOCUMENTED_PORT: Final = "localhost:8080"

FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)[^\n]*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
MAKE_TARGET = re.compile(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", re.MULTILINE)
#: An argparse option row: two spaces, then the option strings, then two or more spaces and the help.
HELP_OPTION_ROW = re.compile(r"^ {2}(-\S.*?)(?: {2,}.*)?$")
HELP_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)")
HELP_SUBCOMMANDS = re.compile(r"\{([\w,-]+)\}")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its lines and where it starts."""

    path: Path
    language: str
    first_line: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """One simple command of a documented shell line, as the shell would split it."""

    where: str
    words: tuple[str, ...]

    @property
    def program(self) -> str:
        return self.words[0].rsplit("/", 1)[-1]


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    fence: str | None = None
    language, start, body = "", 0, []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, start, body = match.group(1), match.group(2).lower(), number, []
        elif fence is not None and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            blocks.append(Block(path, language, start, tuple(body)))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def prose(path: Path) -> str:
    """The file without its fenced blocks and inline code, where links and headings live."""
    fenced = {(b.first_line, len(b.lines)) for b in fenced_blocks(path)}
    lines = path.read_text().splitlines()
    for first, length in fenced:
        for index in range(first - 1, first + length + 1):
            if index < len(lines):
                lines[index] = ""
    return INLINE_CODE.sub("", "\n".join(lines))


def command_lines(block: Block) -> list[tuple[int, str]]:
    """Logical command lines (continuations joined), each with its line number in the file."""
    logical: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.lines, start=1):
        number = block.first_line + offset
        line = raw
        if pending is None:
            if block.language == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            pending = (number, "")
        text = pending[1] + line
        if text.endswith("\\"):
            pending = (pending[0], text[:-1] + " ")
            continue
        logical.append((pending[0], text))
        pending = None
    if pending is not None:
        logical.append(pending)
    return logical


def simple_commands(line: str) -> list[tuple[str, ...]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[tuple[str, ...]] = []
    words: list[str] = []
    redirect = False
    for token in lexer:
        if token in CONTROL_OPERATORS:
            commands.append(tuple(words))
            words = []
        elif token in REDIRECTIONS:
            redirect = True
        elif redirect:
            redirect = False
        else:
            words.append(token)
    commands.append(tuple(words))
    stripped = []
    for command in commands:
        rest = list(command)
        while rest and (rest[0] in SHELL_KEYWORDS or re.match(r"^[A-Za-z_]\w*=", rest[0])):
            rest.pop(0)
        if rest:
            stripped.append(tuple(rest))
    return stripped


def documented_commands() -> list[Command]:
    found = []
    for path in DOCS:
        for block in fenced_blocks(path):
            if block.language not in SHELL_LANGUAGES:
                continue
            for number, line in command_lines(block):
                for words in simple_commands(line):
                    found.append(Command(f"{path.relative_to(ROOT)}:{number}", words))
    return found


def cli_commands() -> list[Command]:
    return [command for command in documented_commands() if command.program in CLIS]


@cache
def help_text(program: str, subcommand: str | None) -> str:
    args = [str(BIN / program), *([subcommand] if subcommand else []), "--help"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert result.returncode == 0, f"{' '.join(args)} failed: {result.stderr}"
    return result.stdout


def subcommands(program: str) -> set[str]:
    match = HELP_SUBCOMMANDS.search(help_text(program, None))
    assert match is not None, f"{program} --help lists no subcommands"
    return set(match.group(1).split(","))


def listed_flags(program: str, subcommand: str | None) -> set[str]:
    rows = (HELP_OPTION_ROW.match(line) for line in help_text(program, subcommand).splitlines())
    return {flag for row in rows if row for flag in HELP_OPTION.findall(row.group(1))}


def split_subcommand(command: Command) -> tuple[str | None, list[str]]:
    """The subcommand (the first word that is not a flag) and the flags, `--flag=value` cut at `=`."""
    arguments = [word for word in command.words[1:] if word != "--"]
    subcommand = next((word for word in arguments if not word.startswith("-")), None)
    flags = [word.split("=", 1)[0] for word in arguments if word.startswith("-") and word != "-"]
    return subcommand, flags


def github_anchor(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose(path).splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_anchor(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not URL_SCHEME.match(target)]


def makefile_targets() -> set[str]:
    return set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def quickstart_script() -> str:
    readme = (ROOT / "README.md").read_text()
    assert f"\n{QUICKSTART_HEADING}\n" in readme, f"README.md has no {QUICKSTART_HEADING!r} section"
    section = readme.split(f"\n{QUICKSTART_HEADING}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0] + "\n"


# -- the extractor itself ------------------------------------------------------------------------------


def test_continuation_lines_join_and_console_output_lines_are_not_commands(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```console\n$ reranker-server serve \\\n  --port 1\n==> reranker-operator render -f x\n```\n"
        "```bash\nA=1 make demo && .venv/bin/reranker-operator crd > out.yaml  # a comment --nope\n```\n"
    )
    lines = [line for block in fenced_blocks(doc) for line in command_lines(block)]
    assert (lines[0][0], lines[0][1].split()) == (2, ["reranker-server", "serve", "--port", "1"])
    assert [simple_commands(line) for _, line in lines] == [
        [("reranker-server", "serve", "--port", "1")],
        [("make", "demo"), (".venv/bin/reranker-operator", "crd")],
    ]


def test_the_extractor_finds_the_readmes_cli_lines() -> None:
    found = {(command.program, command.words[1]) for command in cli_commands() if len(command.words) > 1}
    assert {("reranker-server", "make-test-model"), ("reranker-server", "serve")} <= found


# -- links ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(doc: Path) -> None:
    missing = [
        target
        for target in relative_links(doc)
        if target.split("#", 1)[0] and not (doc.parent / target.split("#", 1)[0]).exists()
    ]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_anchor_names_a_heading_of_its_target(doc: Path) -> None:
    unknown = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if anchor and linked.suffix == ".md" and linked.exists() and anchor not in anchors(linked):
            unknown.append(target)
    assert not unknown, f"{doc.relative_to(ROOT)} links to anchors no heading makes: {unknown}"


# -- the CLIs ------------------------------------------------------------------------------------------


def test_every_cli_line_names_a_real_subcommand() -> None:
    wrong = []
    for command in cli_commands():
        subcommand, flags = split_subcommand(command)
        if subcommand is None and not flags:
            wrong.append(f"{command.where}: {shlex.join(command.words)} (no subcommand)")
        elif subcommand is not None and subcommand not in subcommands(command.program):
            wrong.append(f"{command.where}: {shlex.join(command.words)}")
    assert not wrong, "documented commands with a subcommand the CLI does not have:\n" + "\n".join(wrong)


def test_every_cli_flag_is_listed_by_its_subcommands_help() -> None:
    unknown = []
    for command in cli_commands():
        subcommand, flags = split_subcommand(command)
        if subcommand is not None and subcommand not in subcommands(command.program):
            continue  # reported by the subcommand test
        listed = listed_flags(command.program, subcommand)
        unknown += [
            f"{command.where}: {flag} ({command.program} {subcommand})"
            for flag in flags
            if flag not in listed
        ]
    assert not unknown, "documented flags that `--help` does not list:\n" + "\n".join(unknown)


# -- make ----------------------------------------------------------------------------------------------


def test_every_make_target_in_the_docs_is_a_makefile_target() -> None:
    targets = makefile_targets()
    assert {"test", "demo"} <= targets
    unknown = [
        f"{command.where}: make {word}"
        for command in documented_commands()
        if command.program == "make"
        for word in command.words[1:]
        if not word.startswith("-") and "=" not in word and word not in targets
    ]
    assert not unknown, "documented make targets the Makefile does not have:\n" + "\n".join(unknown)


# -- the README's local quickstart, run --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_readmes_local_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The block runs in bash as pasted, from a directory whose `.venv` is this venv.

    Two changes, neither to a command: the server's ports come from its env vars (`RERANKER_PORT`,
    `RERANKER_METRICS_PORT`; the block sets no port flag, so they apply) and the curl URLs follow the
    port, so the test never collides with whatever holds 8080 or 9090 here.
    """
    assert shutil.which("curl"), "curl is missing: the quickstart uses it (apt-get install curl)"
    script = quickstart_script()
    assert DOCUMENTED_PORT in script
    port = free_port()
    (tmp_path / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    (tmp_path / "quickstart.sh").write_text(script.replace(DOCUMENTED_PORT, f"localhost:{port}"))
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "RERANKER_PORT": str(port),
        "RERANKER_METRICS_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "quickstart.sh"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    answers = [json.loads(line) for line in stdout.splitlines() if line.startswith(("{", "["))]
    ready, cohere, tei = answers
    assert ready == {"status": "ready"}
    assert [result["document"]["text"] for result in cohere["results"]] in (["Paris is..."], ["Berlin is..."])
    assert sorted(item["index"] for item in tei) == [0, 1]
    assert (tmp_path / "build" / "test-model" / "onnx" / "model.onnx").is_file()
