"""The child `image shell`/`exec` starts in a private mount namespace (see chroot.py):
`python -m libs.wolfctl.image.enter ROOTFS NAME -- COMMAND...`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from libs.common.errors import WolfpackError
from libs.wolfctl.image.chroot import enter


def main() -> None:
    rootfs, name, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        raise SystemExit("usage: enter ROOTFS NAME -- COMMAND...")
    try:
        code = enter(Path(rootfs), name, argv)
    except (WolfpackError, subprocess.CalledProcessError) as err:
        print(f"wolfctl: error: {err}", file=sys.stderr)
        code = 125
    raise SystemExit(code)


if __name__ == "__main__":
    main()
