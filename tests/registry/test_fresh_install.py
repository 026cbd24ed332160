"""A fresh registry starts as Warewulf does: with the `default` profile, which nodes added
without profiles get."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.stack import start_registry

API = "/api/v1"


def test_fresh_install_has_the_default_profile(tmp_path: Path) -> None:
    with start_registry(tmp_path) as registry:
        headers = {"Authorization": f"Bearer {registry.token}"}
        with httpx.Client(base_url=registry.url, headers=headers) as api:
            default = api.get(f"{API}/profiles/default").json()
            assert default["kernel"]["args"] == ["quiet", "crashkernel=no", "net.ifnames=1"]
            assert "wwinit" in default["system_overlay"]
            r = api.post(f"{API}/nodes:bulk", json={"names": "n[1-2]"})
            assert r.status_code == 201
            merged = (api.get(f"{API}/nodes/n1", params={"merged": "true"})).json()
            assert merged["node"]["profiles"] == ["default"]
            assert merged["provenance"]["kernel.args"] == ["default"] * 3
            # Deleting it is the admin's choice; a restart with nodes present does not undo it.
            api.patch(f"{API}/nodes/n1", json={"profiles": []})
            api.patch(f"{API}/nodes/n2", json={"profiles": []})
            assert (api.delete(f"{API}/profiles/default")).status_code == 204
    with start_registry(tmp_path) as registry:
        headers = {"Authorization": f"Bearer {registry.token}"}
        with httpx.Client(base_url=registry.url, headers=headers) as api:
            assert (api.get(f"{API}/profiles/default")).status_code == 404
