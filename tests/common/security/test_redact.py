"""Secret fields found from their metadata, masked on the way out, kept on the way back in."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from libs.common.errors import Invalid
from libs.common.logs import scrub
from libs.common.models.api import MergedNode
from libs.common.models.fields import meta
from libs.common.models.node import IPMI, Node
from libs.common.security.redact import MASK, Secrets, secret_paths


class Login(msgspec.Struct, kw_only=True):
    user: str | None = None
    password: Annotated[str | None, meta("password", secret=True)] = None


class Site(msgspec.Struct, kw_only=True):
    logins: dict[str, Login] = msgspec.field(default_factory=dict)
    token: Annotated[str | None, meta("token", secret=True)] = None


def test_paths_come_from_the_metadata() -> None:
    assert secret_paths(Node) == (("ipmi", "password"), ("asset_key",))
    assert secret_paths(MergedNode) == (("node", "ipmi", "password"), ("node", "asset_key"))
    assert secret_paths(Site) == (("logins", "*", "password"), ("token",))


def test_mask_hides_what_is_set_and_leaves_the_rest() -> None:
    secrets = Secrets(Node)
    node = Node(name="n1", asset_key="k-1", ipmi=IPMI(username="admin", password="pw-1"))
    masked = secrets.mask(node)
    assert (masked.asset_key, masked.ipmi.password, masked.ipmi.username) == (  # type: ignore[union-attr]
        MASK,
        MASK,
        "admin",
    )
    assert node.ipmi.password == "pw-1"  # type: ignore[union-attr]  # the stored one untouched
    assert secrets.mask(Node(name="n2")) == Node(name="n2")  # unset stays unset


def test_masked_values_sent_back_keep_the_stored_ones() -> None:
    secrets = Secrets(Site)
    stored = Site(logins={"a": Login(password="pa"), "b": Login(password="pb")}, token="t")
    sent = secrets.mask(stored)
    sent.logins["b"] = Login(password="new")
    kept = secrets.keep_masked(sent, stored)
    assert kept == Site(logins={"a": Login(password="pa"), "b": Login(password="new")}, token="t")
    with pytest.raises(Invalid) as refused:
        secrets.keep_masked(Site(logins={"c": Login(password=MASK)}), stored)
    assert refused.value.field == "logins.c.password"


def test_log_lines_never_hold_an_asset_key() -> None:
    line = '10.0.0.5:713 - "GET /runtime/aa:bb?AssetKey=s3cr3t&callback=900 HTTP/1.1" 200'
    assert scrub(line) == line.replace("s3cr3t", MASK)
    assert scrub("nothing to hide") == "nothing to hide"
