"""Running skopeo (Debian's, which speaks the registry protocol, token auth challenges and
archives for us and verifies every blob digest as it copies) and turning its failures into
clear errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from libs.common.errors import Invalid, NotFound, Unauthorized, WolfpackError
from libs.common.proc.reap import communicate_or_kill

SKOPEO = "skopeo"
STDERR_KEEP = 64 << 10
_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
_MISSING = re.compile(r"(?:open (\S+): )?no such file or directory", re.IGNORECASE)

# (pattern in skopeo's message, error class, what to tell the user) — first match wins.
_KNOWN: tuple[tuple[re.Pattern[str], type[WolfpackError], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind, text)
    for pattern, kind, text in (
        (r"manifest unknown|not found|no descriptor found for reference", NotFound,
         "{source}: no such image or tag"),
        (r"name unknown|repository name not known", NotFound,
         "{source}: no such repository in the registry"),
        (r"unauthorized|authentication required|invalid username/password|access to the resource"
         r" is denied|denied:", Unauthorized,
         "{source}: the registry refused the credentials (give user:password or an auth file)"),
        (r"server gave HTTP response to HTTPS client", Invalid,
         "{source}: the registry speaks plain HTTP; import it as insecure"),
        (r"x509:|certificate", Invalid,
         "{source}: the registry's TLS certificate is not trusted ({detail})"),
        (r"connection refused|no such host|i/o timeout|network is unreachable|no route to host"
         r"|connection reset|dial tcp", Invalid,
         "{source}: registry unreachable ({detail})"),
        (r"no image found in (image index|manifest list)", NotFound,
         "{source}: no image for the wanted platform ({detail})"),
        (r"digest did not match|digest mismatch", Invalid,
         "{source}: a blob does not match its digest ({detail})"),
        (r"no such file or directory", NotFound, "{source}: {detail}"),
        (r"unexpected EOF|untarring|loading tar component|invalid tar|gzip|archive/tar", Invalid,
         "{source}: corrupt or truncated archive ({detail})"),
    )
)  # fmt: skip


def skopeo_error(source: str, stderr: str, *, archive: bool = False) -> WolfpackError:
    """The error a user can act on, from skopeo's stderr; unknown ones keep its last line.
    For an archive (whose path was checked first), a missing file is a part the archive
    lacks: skopeo unpacks it and then misses index.json or a blob."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "skopeo failed without a message"
    found = _LOGRUS_MSG.search(last)
    detail = found.group(1).replace('\\"', '"') if found else last
    if archive and (missing := _MISSING.search(detail)):
        what = (
            f"{Path(missing.group(1)).name} is missing" if missing.group(1) else "a part is missing"
        )
        return Invalid(f"{source}: corrupt or truncated archive ({what})", field="source")
    for pattern, kind, text in _KNOWN:
        if pattern.search(detail):
            return kind(text.format(source=source, detail=_short(detail)), field="source")
    return WolfpackError(f"{source}: skopeo failed: {detail}", field="source")


def _short(detail: str) -> str:
    """The innermost cause of a Go error chain ("a: b: c" → "c", or "b: c" if c is short)."""
    parts = detail.split(": ")
    return ": ".join(parts[-2:]) if len(parts[-1]) < 30 else parts[-1]


async def run_skopeo(args: list[str], *, source: str, tmpdir: Path, archive: bool = False) -> bytes:
    """Run `skopeo ARGS` (with its temporary files under `tmpdir`); returns its stdout.
    A cancelled call kills skopeo before returning."""
    try:
        process = await asyncio.create_subprocess_exec(
            SKOPEO,
            "--tmpdir",
            str(tmpdir),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise WolfpackError("skopeo is not installed (Debian package skopeo)") from None
    stdout, stderr = await communicate_or_kill(process)
    if process.returncode != 0:
        message = stderr[-STDERR_KEEP:].decode("utf-8", "replace")
        raise skopeo_error(source, message, archive=archive)
    return stdout
