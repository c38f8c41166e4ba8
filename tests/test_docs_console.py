# ruff: noqa: E501  (the sample tables read best as kubectl prints them)
"""Every ``console`` block of README.md and docs/ is run against the sandbox, and what it prints is
compared with what the block shows.

A block is the ```` ```console ```` fence: ``$ `` lines are commands, the lines below each one
what it prints (stdout and stderr, as a terminal shows them). Each page gets one fresh sandbox
(``backendauth-operator dev``, as a reader starts it, stopped again by its pid) and one shell
session, in a scratch directory that holds ``examples/``; the page's commands run there in order,
so ``export``, ``source .dev/env`` and ``$?`` carry over from one command to the next. What
differs from run to run is normalised on both sides (:func:`normalise`), kubectl's own klog
lines are left out, and a line ``...`` stands for any number of lines. A block whose title starts with "Needs" (```` ```console
title="Needs a real cluster" ````) cannot run in the sandbox, says so on the page, and is skipped
here, by that mark and only by it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from harness import wait_until

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```console(?P<info>[^\n`]*)$")
TITLE = re.compile(r'title="(?P<title>[^"]*)"')
NOT_RUN_MARK = "Needs"  # the title of a block the sandbox cannot run starts with this word
ELLIPSIS = "..."


# ---- reading the blocks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: int  # where the command is, for messages
    command: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    title: str
    commands: tuple[Command, ...] = field(default_factory=tuple)

    @property
    def runnable(self) -> bool:
        return not self.title.startswith(NOT_RUN_MARK)


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The console blocks of a Markdown page, in order."""
    lines = (page.read_text() if text is None else text).splitlines()
    found = []
    number = 0
    while number < len(lines):
        start = FENCE.match(lines[number])
        number += 1
        if not start:
            continue
        indent = len(start.group("indent"))
        title = TITLE.search(start.group("info"))
        first = number
        body = []
        while number < len(lines) and lines[number].strip() != "```":
            body.append(lines[number][indent:])
            number += 1
        if number == len(lines):
            raise AssertionError(f"{page}:{first}: a console block that never ends")
        number += 1
        commands: list[Command] = []
        for offset, line in enumerate(body):
            if line.startswith("$ "):
                commands.append(Command(first + offset + 1, line[2:], ()))
            elif commands:
                last = commands[-1]
                commands[-1] = replace(last, expected=(*last.expected, line))
            elif line.strip():
                raise AssertionError(f"{page}:{first + offset + 1}: output before the first `$ ` command")
        found.append(Block(page, first, title.group("title") if title else "", tuple(commands)))
    return found


# ---- comparing ----------------------------------------------------------------------------------

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VOLATILE = [
    # job ids, identity pool ids and anything else AWS or the simulator generate as UUIDs
    (re.compile(UUID), "<uuid>"),
    # timestamps
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    # ports of the sandbox's servers
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    # Cognito user pool ids (region_id) and app client ids (26 letters and digits)
    (re.compile(r"\b[a-z]{2}(-[a-z]+)+-\d_[A-Za-z0-9]+\b"), "<user-pool-id>"),
    (re.compile(r"\b[0-9a-z]{26}\b"), "<client-id>"),
    # temporary paths
    (re.compile(r"(/private)?/(tmp|var/folders)/\S*"), "<tmp>"),
    # resourceVersions
    (re.compile(r'(resourceVersion"?:\s*)"?\d+"?'), r"\1<rv>"),
]
# kubectl's own diagnostics (klog), e.g. client-go's reflector noting the end of the watch that
# `kubectl wait --for=jsonpath=...` opened: "I1207 02:31:22.059859 15052 reflector.go:664] ...".
KLOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.-]+:\d+\] ")
AGE = re.compile(r"^(\d+(\.\d+)?(ms|s|m|h|d)){1,2}$|^<invalid>$")


def normalise(line: str, places: tuple[str, ...] = ()) -> str:
    """One output line with its volatile parts named and its spacing collapsed (a table's columns
    widen with their values): ages such as ``5s`` or ``2m3s`` become ``<age>``."""
    for place in places:
        line = line.replace(place, "<dir>")
    for pattern, name in VOLATILE:
        line = pattern.sub(name, line)
    return " ".join("<age>" if AGE.match(word) else word for word in line.split())


def differs(expected: tuple[str, ...], actual: list[str], places: tuple[str, ...] = ()) -> str | None:
    """None when ``actual`` is what ``expected`` shows; otherwise what differs. ``...`` in
    ``expected`` stands for any number of lines; blank lines at either end do not count."""
    want = [normalise(line, places) for line in expected]
    got = [normalise(line, places) for line in actual if not KLOG.match(line)]
    while want and not want[-1]:
        want.pop()
    while got and not got[-1]:
        got.pop()
    if ELLIPSIS not in want:
        if want == got:
            return None
    else:
        parts: list[list[str]] = [[]]
        for line in want:
            if line == ELLIPSIS:
                parts.append([])
            else:
                parts[-1].append(line)
        position = 0
        head, *middle, tail = parts
        ok = got[: len(head)] == head
        position = len(head)
        for part in middle:
            while ok and got[position : position + len(part)] != part:
                position += 1
                ok = position + len(part) <= len(got)
            position += len(part)
        ok = ok and len(got) - position >= len(tail) and (not tail or got[-len(tail) :] == tail)
        if ok:
            return None
    return "expected (normalised):\n  " + "\n  ".join(want) + "\ngot (normalised):\n  " + "\n  ".join(got)


# ---- the sandbox and the shell ------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """The environment of a reader's fresh shell: nothing of AWS or the operator set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_", "KUBECONFIG"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


class Sandbox:
    """``backendauth-operator dev`` as the tutorial starts it, in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / "dev.out"
        # Only the metrics port is the test's own: two sandboxes (this and another test's) on one
        # machine would both want 9090. Port 0 for the API lets the tests run beside a sandbox.
        env = {**clean_environment(), "BACKENDAUTH_METRICS_PORT": "0"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backendauth_operator.commands.cli", "dev", "--port", "0"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=workdir, env=env,
        )  # fmt: skip
        wait_until(lambda: self._started(), 90, "the sandbox to start")

    def _started(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"dev exited {self.process.returncode}:\n{self.log.read_text()}")
        return "Press Ctrl+C" in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dev stops its operator on the way out
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Shell:
    """One bash session, as a reader's second shell: commands in order, output merged."""

    def __init__(self, workdir: Path) -> None:
        env = {
            **clean_environment(),
            "KUBECACHEDIR": str(workdir / ".kube-cache"),
            "PS1": "",
            "HOME": str(workdir),
        }
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=workdir, env=env, text=True, bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.count = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float = 150) -> list[str]:
        """What ``command`` printed. ``$?`` of the next command is this one's exit code."""
        assert self.process.stdin is not None
        self.count += 1
        end = f"<<<end of command {self.count}>>>"
        # Braces keep the command in this shell (export, source, cd) and give it no stdin of
        # ours; the marker ends its output; (exit) keeps its exit code for the next $?.
        self.process.stdin.write(
            f"{{ {command}\n}} < /dev/null 2>&1\n__rc=$?\necho\necho '{end}'\n(exit $__rc)\n"
        )
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"`{command}` printed no end within {timeout}s; so far: {output}"
                ) from None
            if line is None:
                raise AssertionError(f"the shell ended during `{command}`; it printed: {output}")
            if line.rstrip("\n") == end:
                break
            output.append(line.rstrip("\n"))
        if output and output[-1] == "":
            output.pop()  # the newline echoed before the marker
        return output

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Session:
    sandbox: Sandbox
    shell: Shell
    workdir: Path


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    workdir = tmp_path / "repo"
    workdir.mkdir()
    (workdir / "examples").symlink_to(ROOT / "examples")
    sandbox = Sandbox(workdir)
    shell = Shell(workdir)
    try:
        yield Session(sandbox, shell, workdir)
    finally:
        shell.close()
        sandbox.stop()


def runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(block.runnable and block.commands for block in blocks(page))]


@pytest.mark.integration
@pytest.mark.timeout(420)
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_console_block_of_the_page_prints_what_it_shows(page: Path, session: Session) -> None:
    places = (str(session.workdir), str(ROOT))
    mutated_once = False
    for block in blocks(page):
        if not block.runnable:
            continue
        for command in block.commands:
            if (
                command.command.strip().startswith("source .dev/env")
                and not (session.workdir / ".dev/env").exists()
            ):
                if os.environ.get("CI") == "true":
                    pytest.fail(f"{page}:{command.line}: `backendauth-operator dev` wrote no .dev/env")
                pytest.skip(f"{page}:{command.line}: `backendauth-operator dev` writes no .dev/env yet")
            actual = session.shell.run(command.command)
            problem = differs(command.expected, actual, places)
            where = f"{page.relative_to(ROOT)}:{command.line}: $ {command.command}"
            assert problem is None, f"{where}\n{problem}\n(sandbox log: {session.sandbox.log})"
            # The comparison can fail: the same output against a block with one word changed.
            if not mutated_once and command.expected:
                assert differs(mutate(command.expected), actual, places) is not None, where
                mutated_once = True


def mutate(expected: tuple[str, ...]) -> tuple[str, ...]:
    """The expected lines with one word of the first line that has a word changed."""
    lines = list(expected)
    for index, line in enumerate(lines):
        words = [w for w in re.findall(r"[A-Za-z]{3,}", line) if w != "..."]
        if words:
            lines[index] = line.replace(words[0], words[0] + "x", 1)
            return tuple(lines)
    return (*lines, "an extra line")


# ---- the parts that need no sandbox -------------------------------------------------------------

SAMPLE = """\
text before
```console
$ kubectl get bauth -o wide
NAME           APP              ENV       STATUS      READY   AGE   JOB                                    REASON         ERROR   ACCOUNT
minimal-auth   d1a2b3c4d5e6f7   staging   COMPLETED   True    4s    a2aa3fe6-34d3-4423-94f5-2f5fd956f9fc   JobCompleted           000000000000
$ echo $?
0
```

```console title="Needs a real cluster"
$ kubectl get pods -n backendauth-system
```
"""
RUN = [
    "NAME           APP              ENV       STATUS      READY   AGE    JOB                                    REASON         ERROR   ACCOUNT",
    "minimal-auth   d1a2b3c4d5e6f7   staging   COMPLETED   True    12m    0f7f65bf-db2a-424e-8098-a843844dc824   JobCompleted           000000000000",
]  # fmt: skip


def test_blocks_are_read_with_commands_outputs_and_the_mark() -> None:
    first, second = blocks(Path("sample.md"), SAMPLE)
    assert [c.command for c in first.commands] == ["kubectl get bauth -o wide", "echo $?"]
    assert len(first.commands[0].expected) == 2 and first.commands[1].expected == ("0",)
    assert first.runnable and not second.runnable and second.title == "Needs a real cluster"


def test_volatile_parts_do_not_count_and_everything_else_does() -> None:
    expected = blocks(Path("sample.md"), SAMPLE)[0].commands[0].expected
    assert differs(expected, RUN) is None  # another age, another job id, other column widths
    assert differs(mutate(expected), RUN) is not None
    for changed in ("COMPLETED", "True", "JobCompleted", "staging", "000000000000"):
        wrong = [RUN[0], RUN[1].replace(changed, "Other")]
        assert differs(expected, wrong) is not None, changed
    assert differs(expected, RUN[:1]) is not None  # a line missing
    assert differs(expected, [*RUN, "more"]) is not None  # a line more


def test_ids_paths_and_times_are_named() -> None:
    assert normalise("  userPoolId: eu-west-1_c9c86ac4c") == normalise("userPoolId: us-east-1_Ab12Cd34e")
    assert normalise("appClientId: 1c62b79c3855ddc8881c7d87f8") == normalise(
        "appClientId: 0199b6b527201d37b9ba3ae8b0"
    )
    assert normalise("export KUBECONFIG=/tmp/pytest-1/repo/.dev/kubeconfig") == normalise(
        "export KUBECONFIG=/tmp/abc/.dev/kubeconfig"
    )
    assert normalise("at http://127.0.0.1:42103 on 2026-12-07T01:59:55.000Z") == normalise(
        "at http://127.0.0.1:1234 on 2027-01-01T00:00:00Z"
    )
    assert normalise('resourceVersion: "123"') == normalise('resourceVersion: "9"')
    assert normalise("AGE 2m3s") == normalise("AGE 5s")
    assert normalise("minimumLength: 8") != normalise("minimumLength: 12")
    klog = 'I1207 02:31:22.059859 15052 reflector.go:664] "Warning: watch ended with error"'
    assert differs(("condition met",), [klog, "condition met"]) is None
    assert differs(("condition met",), ["I said so", "condition met"]) is not None


def test_an_ellipsis_stands_for_any_lines() -> None:
    expected = ("secret/google-oauth created", ELLIPSIS, "backendauth/x created")
    assert differs(expected, ["secret/google-oauth created", "a", "b", "backendauth/x created"]) is None
    assert differs(expected, ["secret/google-oauth created", "backendauth/x created"]) is None
    assert differs(expected, ["secret/google-oauth created", "a"]) is not None
    assert differs(expected, ["a", "backendauth/x created"]) is not None


def test_every_page_has_its_blocks_well_formed_and_some_are_run() -> None:
    every = [block for page in PAGES for block in blocks(page)]
    assert all(block.commands for block in every), [f"{b.page}:{b.line}" for b in every if not b.commands]
    run = [block for block in every if block.runnable]
    assert len(run) >= 10 and ROOT / "README.md" in runnable_pages()
    # A block that is not run says why, in its title, on the page.
    assert all(block.title.startswith(NOT_RUN_MARK) for block in every if not block.runnable)
