"""`wolfpack` and `wolfctl` run as a user runs them: a fresh `python -m` process from the repo
root, with this process's environment minus its WOLFPACK_ variables plus what the test gives,
exit code and output captured, killed if it hangs past a timeout. Sync and async; `start_cli` and
`cli_running` for a process the test works beside (a service, `wolfctl node status -w`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final, Literal

from libs.common.proc.reap import communicate_or_kill

REPO: Final = Path(__file__).resolve().parent.parent
Program = Literal["wolfpack", "wolfctl"]
MODULES: Final[dict[Program, str]] = {
    "wolfpack": "libs.runtime.cli",
    "wolfctl": "libs.wolfctl.main",
}
# Where the CLIs would find a local data folder: nowhere, so only what a test gives counts
# (their default, ./var/wolfpack, would be the repository's own).
NO_DATA: Final = str(REPO / "var" / "no-such-data-dir")
# A bound on a hang, not on speed: a command that is only slow still passes.
WITHIN: Final = 300.0


def argv(program: Program, *args: str) -> list[str]:
    return [sys.executable, "-m", MODULES[program], *args]


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its WOLFPACK_ variables, WOLFPACK_DATA=NO_DATA, then
    `env`; Python's output unbuffered, so a log shows what happened up to a kill."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WOLFPACK_")}
    return clean | {"WOLFPACK_DATA": NO_DATA, "PYTHONUNBUFFERED": "1"} | dict(env or {})


def run_cli(
    program: Program,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
    within: float = WITHIN,
) -> subprocess.CompletedProcess[str]:
    """`program ARGS` to its end; killed (and TimeoutExpired raised) after `within` s."""
    return subprocess.run(
        argv(program, *args),
        cwd=REPO,
        env=environment(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )


async def run_cli_async(
    program: Program,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
    within: float = WITHIN,
) -> subprocess.CompletedProcess[str]:
    """`run_cli` without blocking the event loop (a test's services may run in it); killed
    (and TimeoutError raised) after `within` s."""
    command = argv(program, *args)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        env=environment(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(within):
        out, err = await communicate_or_kill(process, stdin.encode())
    assert process.returncode is not None
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())


def start_cli(
    program: Program, *args: str, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`program ARGS` left running (a service, `wolfpack up`), its output appended to `log`.
    The caller stops it (tests/stack.py stop_process)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv(program, *args),
            cwd=REPO,
            env=environment(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def cli_running(
    program: Program, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`program ARGS` running while the block reads its stdout and stderr as it goes;
    terminated (killed if it will not stop) at the end."""
    process = await asyncio.create_subprocess_exec(
        *argv(program, *args),
        cwd=REPO,
        env=environment(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
