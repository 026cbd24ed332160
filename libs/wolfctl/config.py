"""Where the registry is and which token to send: flags, then environment, then the data dir.

Order for the URL: `--url`, `WOLFPACK_URL`, `DATA/endpoints.json` (written by `wolfpack up`),
the default port on localhost. For the token: `--token`, `WOLFPACK_TOKEN`, `DATA/api.token`.
For the CA that https URLs are verified with: `WOLFPACK_CA`, the `ca_file` of
`DATA/endpoints.json` (`wolfpack up --tls`), else the system's trusted CAs.
DATA is `WOLFPACK_DATA`, else `./var/wolfpack`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

import msgspec

from libs.common import endpoints, names
from libs.common.errors import Invalid

ENV_URL = "WOLFPACK_URL"
ENV_TOKEN = "WOLFPACK_TOKEN"
ENV_DATA = "WOLFPACK_DATA"
ENV_CA = "WOLFPACK_CA"
DEFAULT_URL = f"http://127.0.0.1:{names.PORTS['registry']}"


class ApiConfig(msgspec.Struct, kw_only=True, frozen=True):
    """The registry's base URL (with the API prefix) and the bearer token, if any."""

    url: str
    token: str | None = None
    # A CA certificate file to verify https answers with (None: the system's CAs).
    ca: str | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with: never nothing."""
        if not self.ca:
            return True
        # Imported here: libs.common.tls loads `cryptography`, which plain http need not pay.
        from libs.common.tls import client_context

        return client_context(Path(self.ca))

    @property
    def base_url(self) -> str:
        return api_base(self.url)


def api_base(url: str) -> str:
    """`http://host:9870` -> `http://host:9870/api/v1` (a URL that has the prefix keeps it)."""
    url = url.rstrip("/")
    return url if url.endswith(names.API_PREFIX) else url + names.API_PREFIX


def data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get(ENV_DATA) or names.DEFAULT_DATA)


def _endpoints(data: Path) -> endpoints.Endpoints | None:
    path = data / endpoints.FILE
    try:
        return endpoints.read_endpoints(data)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    except msgspec.DecodeError as e:
        raise Invalid(f"{path} is not what `wolfpack up` writes: {e}") from None


def _endpoint_from_file(data: Path) -> str | None:
    found = _endpoints(data)
    return found.services.get("registry") if found is not None else None


def ca_file(env: Mapping[str, str]) -> str | None:
    """`WOLFPACK_CA`, else the CA `wolfpack up --tls` wrote into DATA/endpoints.json."""
    if env.get(ENV_CA):
        return env[ENV_CA]
    found = _endpoints(data_dir(env))
    return found.ca_file if found is not None else None


def _token_from_file(data: Path) -> str | None:
    path = data / names.TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Invalid(f"cannot read the API token {path}: {e.strerror}") from None
    return token or None


def resolve(
    env: Mapping[str, str], *, url: str | None = None, token: str | None = None
) -> ApiConfig:
    """The registry endpoint, taking the first source that has a value (see module doc)."""
    data = data_dir(env)
    found_url = url or env.get(ENV_URL) or _endpoint_from_file(data) or DEFAULT_URL
    found_token = token or env.get(ENV_TOKEN) or _token_from_file(data)
    return ApiConfig(url=found_url, token=found_token, ca=ca_file(env))
