"""The revision in HTTP headers: what an ETag says, an If-Match sends back (registry, overlayd)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.errors import Invalid
from libs.common.http.revisions import etag, if_match_revision


@given(st.integers(min_value=0, max_value=2**63))
def test_an_etag_sent_back_names_its_revision(revision: int) -> None:
    assert if_match_revision(etag(revision)) == revision
    assert if_match_revision(f"W/{etag(revision)}") == revision
    assert if_match_revision(f" {revision} ") == revision


def test_no_if_match_asks_for_no_revision() -> None:
    assert if_match_revision(None) is None


@pytest.mark.parametrize("header", ["", "*", '"abc"', '"-1"', '"1.5"', '"1", "2"', '"²"'])
def test_anything_but_a_revision_is_refused(header: str) -> None:
    with pytest.raises(Invalid, match="If-Match must be a revision number") as caught:
        if_match_revision(header)
    assert caught.value.field == "If-Match"
