"""wolfctl run as a user runs it: `python -m libs.wolfctl.main` in a fresh process from the
repo root, its exit code and output. Only the WOLFPACK_ variables a test gives reach it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from libs.common.proc.reap import communicate_or_kill
from tests.stack import REPO

# Where the CLI would find a local data folder: nowhere, so only the environment counts.
NO_DATA = str(REPO / "var" / "no-such-data-dir")


@dataclass
class Result:
    code: int
    out: str
    err: str


async def run_wolfctl(
    args: list[str], env: Mapping[str, str], *, stdin: bytes = b"", within: float | None = None
) -> Result:
    """`wolfctl ARGS` with this process's environment minus its WOLFPACK_ variables, plus
    WOLFPACK_DATA=NO_DATA and `env`; None `within` waits as long as it takes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WOLFPACK_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.wolfctl.main",
        *args,
        cwd=REPO,
        env=clean | {"WOLFPACK_DATA": NO_DATA} | dict(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(within):
        out, err = await communicate_or_kill(proc, stdin)  # a hung wolfctl is killed
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
