"""The layers point only down (docs/architecture.md, "Layers"): every import of every module
under libs/ and services/ is read with `ast` and checked against the rules; a broken rule fails
naming the file, the line and the rule.

    libs/wolfctl   libs/runtime        entry points: the CLI, and the host that runs services
          \\        /     :             (runtime names services only by string, in its loader)
           \\      /   services/*       no service imports another
            libs/common                 the contract and what every part shares
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]


class Violation(NamedTuple):
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.rule}"


def module_of(path: str) -> str:
    """`libs/common/bus/kv.py` -> `libs.common.bus.kv` (a package is its folder's name)."""
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: str, source: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `source`, relative ones resolved, those
    under `if TYPE_CHECKING:` included (a type is a dependency too)."""
    package = module_of(path)
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from libs.common import names` may import a module: check each name too.
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _service(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def rule_broken(importer: str, imported: str) -> str | None:
    """Which rule `importer` (a module) importing `imported` breaks, or None."""
    if _within(importer, "libs.common"):
        for upper in ("libs.runtime", "libs.wolfctl", "services"):
            if _within(imported, upper):
                return f"libs/common imports nothing from {upper.replace('.', '/')}"
    if _within(importer, "libs.runtime"):
        if _within(imported, "services"):
            return "libs/runtime names services only by string (its loader), never imports one"
        if _within(imported, "libs.wolfctl"):
            return "libs/runtime imports no wolfctl module"
    if _within(importer, "libs.wolfctl"):
        for other in ("services", "libs.runtime"):
            if _within(imported, other):
                return f"libs/wolfctl talks to services over HTTP and NATS, not {other}"
    own = _service(importer)
    if own is not None:
        other = _service(imported)
        if other is not None and other != own:
            return f"no service imports another (services/{own} imports services/{other})"
        for upper in ("libs.runtime", "libs.wolfctl"):
            if _within(imported, upper):
                return f"a service imports only libs/common, not {upper.replace('.', '/')}"
    engine = "services.overlayd.engine"
    outside_engine = _within(imported, "services.overlayd") and not _within(imported, engine)
    if _within(importer, engine) and outside_engine:
        return "services/overlayd/engine imports nothing else from overlayd"
    return None


def violations(path: str, source: str) -> list[Violation]:
    importer = module_of(path)
    found: dict[tuple[int, str], Violation] = {}
    for line, imported in imports(path, source):
        rule = rule_broken(importer, imported)
        # `from a import b` yields both a and a.b: each line and rule is reported once.
        if rule is not None and (line, rule) not in found:
            found[line, rule] = Violation(path, line, imported, rule)
    return sorted(found.values())


def sources() -> list[Path]:
    return sorted(
        path
        for folder in ("libs", "services")
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def test_every_import_points_down() -> None:
    checked = sources()
    assert len(checked) > 250, "the walk found too few modules to be the whole tree"
    broken = [
        str(v)
        for path in checked
        for v in violations(str(path.relative_to(REPO)), path.read_text())
    ]
    assert not broken, "imports that break a layer rule:\n" + "\n".join(broken)


# The imports that broke the rules before the layers were cleaned up (issue 11): the check
# must still catch each of them, naming the file and the line.
OLD_IMPORTS = [
    ("libs/common/service.py", "from libs.runtime.services import load"),
    ("libs/runtime/up.py", "from services.overlayd.config import load_config"),
    ("libs/runtime/dhcp.py", "from services.overlayd.hostconfig import HostConfig"),
    ("libs/runtime/store_refs.py", "from services.builder.layout import CHUNK_INDEX"),
    ("libs/runtime/store_refs.py", "from services.builder.vnfs.chunks import ChunkIndex"),
    ("libs/runtime/store_cmds.py", "from libs.wolfctl.client import decode"),
    ("libs/runtime/store_progress.py", "from libs.wolfctl.progressbar import StderrBar"),
    ("libs/runtime/store_text.py", "from libs.wolfctl.image.progress import human_bytes"),
    ("services/overlayd/engine/renderer.py", "from services.overlayd.keys import HostKeys"),
    ("services/bootd/discovery.py", "from services.registry.registry import Registry"),
    ("libs/wolfctl/main.py", "import services.bootd.app"),
    ("libs/common/nodes/merge.py", "from libs.wolfctl import output"),
    ("services/tftpd/app.py", "from libs.runtime import host"),
]


@pytest.mark.parametrize(("path", "line"), OLD_IMPORTS)
def test_a_broken_rule_is_named_with_its_file_and_line(path: str, line: str) -> None:
    source = f'"""A module."""\n\nimport os\n{line}\n'
    found = violations(path, source)
    assert [(v.path, v.line) for v in found] == [(path, 4)], found
    assert path in str(found[0]) and ":4:" in str(found[0])


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("libs/runtime/services.py", 'SERVICES = {"registry": "services.registry.app:build"}'),
        ("libs/runtime/host.py", "from libs.common.service import Builder"),
        ("services/overlayd/app.py", "from services.overlayd.engine import OverlayRenderer"),
        ("services/overlayd/engine/wave_renderer.py", "from .keys import HostKeys"),
        ("libs/wolfctl/main.py", "from libs.common.apiclient.client import Registry"),
        ("libs/common/bus/kv.py", "from libs.common.bus import watch"),
    ],
)
def test_what_the_rules_allow_passes(path: str, line: str) -> None:
    assert violations(path, f"{line}\n") == []


def test_relative_imports_are_resolved() -> None:
    found = violations("services/overlayd/engine/wave_renderer.py", "from ..keys import Keys\n")
    assert [v.imported for v in found] == ["services.overlayd.keys"]
