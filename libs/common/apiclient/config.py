"""Where a service's API is and which token to send: flags, then environment, then the data dir.

Order for the URL: a flag (`--url`), the service's variable (`WOLFPACK_URL` for the registry,
`WOLFPACK_BUILDER_URL`, `WOLFPACK_OVERLAYD_URL`), `DATA/endpoints.json` (written by
`wolfpack up`), the default port on localhost. For the token: `--token`, `WOLFPACK_TOKEN`,
`DATA/api.token`. For the CA that https URLs are verified with: `WOLFPACK_CA`, the `ca_file` of
`DATA/endpoints.json` (`wolfpack up --tls`), else the system's trusted CAs. For NATS:
`WOLFPACK_NATS`, DATA/endpoints.json, the default port. DATA is `WOLFPACK_DATA`, else
`./var/wolfpack`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

from libs.common import endpoints, names
from libs.common.bus.auth import nats_token
from libs.common.errors import Invalid

ENV_TOKEN: Final = "WOLFPACK_TOKEN"
ENV_DATA: Final = "WOLFPACK_DATA"
ENV_CA: Final = "WOLFPACK_CA"
ENV_NATS: Final = "WOLFPACK_NATS"
# The variable that points clients at each service's API.
ENV_URLS: Final = {
    "registry": "WOLFPACK_URL",
    "builder": "WOLFPACK_BUILDER_URL",
    "overlayd": "WOLFPACK_OVERLAYD_URL",
    "bootd": "WOLFPACK_BOOTD_URL",
}
ENV_URL: Final = ENV_URLS["registry"]
DEFAULT_NATS: Final = f"nats://127.0.0.1:{names.NATS_PORT}"


def default_url(service: str) -> str:
    return f"http://127.0.0.1:{names.PORTS[service]}"


DEFAULT_URL: Final = default_url("registry")


class ApiConfig(msgspec.Struct, kw_only=True, frozen=True):
    """A service's base URL (with the API prefix) and the bearer token, if any."""

    url: str
    token: str | None = None
    # A CA certificate file to verify https answers with (None: the system's CAs).
    ca: str | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with: never nothing."""
        if not self.ca:
            return True
        # Imported here: libs.common.security.tls loads `cryptography`, which plain http need
        # not pay.
        from libs.common.security.tls import client_context

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


def written_endpoints(data: Path) -> endpoints.Endpoints | None:
    """DATA/endpoints.json, None when no `wolfpack up` wrote one; an unreadable one is Invalid."""
    path = data / endpoints.FILE
    try:
        return endpoints.read_endpoints(data)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    except msgspec.DecodeError as e:
        raise Invalid(f"{path} is not what `wolfpack up` writes: {e}") from None


def ca_file(env: Mapping[str, str]) -> str | None:
    """`WOLFPACK_CA`, else the CA `wolfpack up --tls` wrote into DATA/endpoints.json."""
    if env.get(ENV_CA):
        return env[ENV_CA]
    found = written_endpoints(data_dir(env))
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
    env: Mapping[str, str],
    *,
    service: str = "registry",
    url: str | None = None,
    token: str | None = None,
) -> ApiConfig:
    """`service`'s endpoint, taking the first source that has a value (see module doc)."""
    data = data_dir(env)
    found = written_endpoints(data)
    found_url = (
        url
        or env.get(ENV_URLS[service])
        or (found.services.get(service) if found is not None else None)
        or default_url(service)
    )
    found_token = token or env.get(ENV_TOKEN) or _token_from_file(data)
    return ApiConfig(url=found_url, token=found_token, ca=ca_file(env))


def nats_url(env: Mapping[str, str]) -> str:
    found = written_endpoints(data_dir(env))
    return env.get(ENV_NATS) or (found.nats if found else None) or DEFAULT_NATS


def nats_token_for(env: Mapping[str, str], url: str) -> str | None:
    """The client token of `wolfpack up`'s nats-server, from the data folder
    (libs/common/bus/auth.py); None for a server of the site's, or when it cannot be read."""
    return nats_token(url, data_dir(env))
