"""The commands of README.md and docs/clients.md run as written, against a real platform.

Each document's fenced blocks run in order from a directory laid out like a fresh clone after
``make install`` (this checkout's ``.venv`` and ``examples/``), unless the line before a block
is an HTML comment that starts ``<!-- not run``:

- ``python`` blocks run as a script with the venv's Python. A line ``print(...)  # VALUE``
  promises that VALUE (the Python literal the comment starts with) is printed, in order.
- Blocks whose lines start with ``$ `` are shell transcripts: every command runs in one bash
  session per document (variables carry over), and what it prints (stdout and stderr) must
  match the lines below it. There ``...`` stands for anything (a line of its own: any lines),
  and ids, times, worker ids and a few JSON fields (host, pid, counts, versions) may differ:
  an id the document shows is mapped to the one the platform gave, and later commands and
  outputs use that one.
- Other ``sh`` blocks run as one ``bash -euo pipefail`` script and must succeed.
- Blocks of other languages (``text``, none) are not run.

The documents' addresses (127.0.0.1:50051, 127.0.0.1:50052, http://127.0.0.1:8000) become the
test platform's, and FAAS_TARGET and FAAS_REST_URL name it for commands that give none (the
CLI, the examples). README.md
runs with the venv off PATH (it spells out ``.venv/bin/...``); docs/clients.md with the venv on
PATH, as after ``source .venv/bin/activate``, which the guide asks for first.
"""

from __future__ import annotations

import ast
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
COMMAND_SECONDS = 120

_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = "<!-- not run"
# JSON fields whose values differ with every machine and run (ListWorkers).
_VOLATILE_FIELDS = (
    "host",
    "pid",
    "assigned",
    "completed",
    "failed",
    "python_version",
    "dill_version",
    "cloudpickle_version",
)
_VOLATILE = re.compile(
    rf'(?P<field>"(?:{"|".join(_VOLATILE_FIELDS)})": (?:"[^"]*"|\d+))'
    r"|(?P<id>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"
    r"|(?P<worker>\bworker-\d+-\d+\b)"
    r"|(?P<time>\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"
    r"|(?P<clock>\b\d\d:\d\d:\d\d\.\d{3}\b)"
    r"|(?P<ellipsis>\.\.\.)"
)
_ANY = {"time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "clock": r"\d\d:\d\d:\d\d\.\d{3}"}
_CAPTURE = {"id": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"}
_CAPTURE["worker"] = r"worker-\d+-\d+"


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    doc: str
    line: int  # of its opening fence, 1-based
    lang: str
    text: str
    run: bool

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def transcript(self) -> bool:
        return self.text.startswith("$ ")


def blocks(doc: str) -> list[Block]:
    """The fenced blocks of ``doc`` (a path relative to the repository)."""
    found: list[Block] = []
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        before = next((text for text in reversed(lines[:start]) if text.strip()), "")
        found.append(
            Block(
                doc,
                start + 1,
                opening.group(1),
                "\n".join(body) + "\n",
                not before.strip().startswith(_NOT_RUN),
            )
        )
        index += 1
    return found


def _commands(text: str) -> Iterator[tuple[str, str]]:
    """A transcript's ``(command, expected output)`` pairs; a command goes on over lines that
    end in a backslash or inside an open quote."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        assert lines[index].startswith("$ "), f"not a command: {lines[index]!r}"
        command = lines[index][2:]
        index += 1
        while _incomplete(command):
            command += "\n" + lines[index]
            index += 1
        output: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            output.append(lines[index])
            index += 1
        yield command, "\n".join(output)


def _incomplete(command: str) -> bool:
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:  # an open quote
        return True
    return False


def _squeeze(text: str) -> str:
    """Runs of blanks as one space, no trailing blanks, no trailing empty lines."""
    return "\n".join(re.sub(r"[ \t]+", " ", line).rstrip() for line in text.splitlines()).rstrip()


@dataclass
class Session:
    """What a document's blocks share: the directory, environment, addresses and ids."""

    cwd: Path
    env: dict[str, str]
    addresses: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)  # the document's id -> the platform's

    def substitute(self, text: str) -> str:
        for documented, real in [*self.addresses.items(), *self.ids.items()]:
            text = text.replace(documented, real)
        return text

    def check_output(self, where: str, command: str, expected: str, actual: str) -> None:
        """Matches ``actual`` against ``expected`` (see the module docstring); new ids are
        mapped."""
        pattern, groups = self._pattern(_squeeze(self.substitute(expected)))
        printed = _squeeze(actual)
        found = re.fullmatch(pattern, printed + "\n" if printed else "")
        assert found is not None, (
            f"{where}: the output of\n  $ {command}\ndoes not match the document.\n"
            f"--- documented\n{expected}\n--- printed\n{actual}"
        )
        for name, documented in groups.items():
            self.ids[documented] = found.group(name)

    def _pattern(self, expected: str) -> tuple[str, dict[str, str]]:
        parts: list[str] = []
        groups: dict[str, str] = {}
        captured: dict[str, str] = {}
        for line in expected.splitlines() if expected else []:
            if line.strip() == "...":
                parts.append(r"(?:[^\n]*\n)*?")
                continue
            position = 0
            for token in _VOLATILE.finditer(line):
                parts.append(re.escape(line[position : token.start()]))
                position = token.end()
                kind, value = token.lastgroup or "", token.group()
                if kind == "ellipsis":
                    parts.append(r"[^\n]*?")
                elif kind == "field":
                    key = value.partition(":")[0]
                    parts.append(re.escape(key) + r': (?:"[^"]*"|\d+)')
                elif kind in _ANY:
                    parts.append(_ANY[kind])
                elif value in captured:  # seen earlier in this output: the same again
                    parts.append(f"(?P={captured[value]})")
                else:
                    name = f"g{len(groups)}"
                    groups[name], captured[value] = value, name
                    parts.append(f"(?P<{name}>{_CAPTURE[kind]})")
            parts.append(re.escape(line[position:]) + r"\n")
        return "".join(parts), groups


class Shell:
    """One bash session: commands run one after another, their output merged and captured."""

    def __init__(self, session: Session) -> None:
        self._marker = f"__docs_{uuid.uuid4().hex}__"
        self._process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=session.cwd,
            env=session.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def run(self, command: str) -> tuple[int, str]:
        """Runs ``command`` (stdin from /dev/null); its exit code and output."""
        assert self._process.stdin is not None
        self._process.stdin.write(
            f"{{ {command}\n}} < /dev/null 2>&1\nprintf '\\n{self._marker} %s\\n' \"$?\"\n"
        )
        self._process.stdin.flush()
        output: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=COMMAND_SECONDS)
            except queue.Empty:
                raise AssertionError(f"no end after {COMMAND_SECONDS}s: {command}") from None
            assert line, f"the shell ended during: {command}\n{''.join(output)}"
            if line.startswith(self._marker):
                text = "".join(output)
                return int(line.split()[1]), text[:-1] if text.endswith("\n") else text
            output.append(line)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=30)
        assert self._process.stdout is not None
        self._process.stdout.close()


def _promised_prints(code: str) -> list[str]:
    """What the ``print(...)  # VALUE`` lines of a Python block promise to print, in order."""
    promised = []
    for line in code.splitlines():
        found = re.match(r"\s*print\(.*\)\s+#\s*(.+)$", line)
        if found is None:
            continue
        comment = found.group(1)
        cuts = [len(comment)] + [m.start() for m in re.finditer(r", | \(", comment)]
        for cut in sorted(cuts, reverse=True):
            try:
                value = ast.literal_eval(comment[:cut])
            except (ValueError, SyntaxError):
                continue
            promised.append(str(value))
            break
    return promised


def _run_python(block: Block, session: Session, index: int) -> None:
    script = session.cwd / f"docs_block_{index}.py"
    code = session.substitute(block.text)
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [str(VENV / "bin" / "python"), script.name],
        cwd=session.cwd,
        env=session.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stderr}"
    printed = iter(line.rstrip() for line in done.stdout.splitlines())
    for value in _promised_prints(code):
        assert any(line == value for line in printed), (
            f"{block.where}: {value!r} is not printed (in order):\n{done.stdout}"
        )


def _run_script(block: Block, session: Session) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", session.substitute(block.text)],
        cwd=session.cwd,
        env=session.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.where} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )


def _run_transcript(block: Block, shell: Shell, session: Session) -> None:
    for command, expected in _commands(block.text):
        code, output = shell.run(session.substitute(command))
        documented = [line for line in expected.splitlines() if line.strip() != "..."]
        assert code == 0 or documented, (
            f"{block.where}: `{command}` exited {code} and its output is not shown:\n{output}"
        )
        session.check_output(block.where, command, expected, output)


def _session(platform: Platform, tmp_path: Path, venv_on_path: bool) -> Session:
    """A directory that looks like a fresh clone after ``make install``."""
    cwd = tmp_path / "clone"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(VENV, target_is_directory=True)
    (cwd / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    hidden = {"REDIS_URL", "VIRTUAL_ENV", "PYTHON"}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV / "bin"]
    if venv_on_path:
        env["VIRTUAL_ENV"] = str(cwd / ".venv")
        path.insert(0, str(cwd / ".venv" / "bin"))
    env["PATH"] = os.pathsep.join(path)
    # What a command reaches without an address: this platform, never a default port.
    env["FAAS_TARGET"] = platform.gateway_target
    env["FAAS_REST_URL"] = platform.rest_url
    addresses = {
        "http://127.0.0.1:8000": platform.rest_url,
        "127.0.0.1:50051": platform.gateway_target,
        "127.0.0.1:50052": platform.dispatcher_target,
    }
    return Session(cwd, env, addresses)


def _run_document(doc: str, platform: Platform, tmp_path: Path, venv_on_path: bool) -> int:
    """Runs every block of ``doc`` meant to run; how many ran."""
    session = _session(platform, tmp_path, venv_on_path)
    shell = Shell(session)
    ran = 0
    try:
        for index, block in enumerate(blocks(doc)):
            if not block.run:
                continue
            if block.transcript:
                _run_transcript(block, shell, session)
            elif block.lang == "python":
                _run_python(block, session, index)
            elif block.lang in ("sh", "bash", "console"):
                _run_script(block, session)
            else:
                continue
            ran += 1
    finally:
        shell.close()
    return ran


@pytest.mark.slow
def test_readme_commands_run_as_written(make_platform: PlatformFactory, tmp_path: Path) -> None:
    ran = _run_document("README.md", make_platform(), tmp_path, venv_on_path=False)
    assert ran >= 3


@pytest.mark.slow
def test_clients_guide_commands_run_as_written(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    ran = _run_document("docs/clients.md", make_platform(), tmp_path, venv_on_path=True)
    assert ran >= 8


@pytest.mark.parametrize("doc", ["README.md", "docs/clients.md"])
def test_documents_do_not_skip_much(doc: str) -> None:
    """Blocks marked not to run are few, and each says why."""
    skipped = [block for block in blocks(doc) if not block.run]
    assert len(skipped) <= 4, [block.where for block in skipped]
    text = (ROOT / doc).read_text(encoding="utf-8")
    reasons = re.findall(r"<!-- not run: (.+?) -->", text)
    assert len(reasons) == len(skipped), "every <!-- not run: REASON --> gives a reason"


def test_readme_commands_use_the_venv_python() -> None:
    """README commands name the venv's Python (a system ``python`` lacks dill and the rest);
    docs/clients.md asks for the venv to be active instead."""
    bare = [
        f"README.md:{number}: {line.strip()}"
        for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1)
        if not line.startswith(("#", "<!--"))  # headings and markers name modules
        and re.search(r"(?<![\w/.-])(python3?|pip) (-m|-c|install|wheel) ", line)
    ]
    assert not bare, "\n".join(bare)
