"""What setup_logging prints: checked in a child process, so this test leaves the logging of
the test session alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.cli import REPO

KEY = "s3cr3t-asset-key"


def logged(code: str) -> str:
    """stderr of a Python process that sets up logging as `svc` and runs `code`."""
    program = "from libs.common.logs import setup_logging\nlog = setup_logging('svc')\n"
    done = subprocess.run(
        [sys.executable, "-c", program + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def test_asset_keys_are_hidden_in_messages_and_tracebacks() -> None:
    err = logged(
        f"""
        log.info("GET /ipxe/aa?assetkey={KEY} 200")
        try:
            raise RuntimeError("fetch http://h/blob?wwid=x&assetKey={KEY}&y=1 failed")
        except RuntimeError:
            log.exception("the fetch failed")
        """
    )
    assert "INFO svc: GET /ipxe/aa?assetkey=******** 200" in err
    assert "RuntimeError: fetch http://h/blob?wwid=x&assetKey=********&y=1 failed" in err
    assert "ERROR svc: the fetch failed\nTraceback" in err
    assert KEY not in err


def test_verbatim_lines_are_passed_on_as_they_are() -> None:
    err = logged('log.info("INFO child: ready", extra={"verbatim": True})\n')
    assert err == "INFO child: ready\n"
