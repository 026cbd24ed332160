"""Every name the services agree on, defined once: ports, stream, buckets. Subjects: subjects.py."""

from __future__ import annotations

from typing import Final

# Every service by name, with its port: the one list of services (in start order).
PORTS: Final[dict[str, int]] = {
    "registry": 9870,
    "builder": 9871,
    "overlayd": 9872,
    "bootd": 9873,
    # tftpd serves TFTP on 69/udp; this is its HTTP health port.
    "tftpd": 9874,
}
SERVICES: Final = tuple(PORTS)
# bootd's HTTPS port under `--tls`: its own port stays plain HTTP, as iPXE cannot trust our CA.
BOOTD_TLS_PORT: Final = 9875
TFTP_PORT: Final = 69
NATS_PORT: Final = 4222

STREAM: Final = "WOLFPACK"

BUCKET_NODES: Final = "nodes"
BUCKET_PROFILES: Final = "profiles"
BUCKET_IMAGES: Final = "images"
BUCKET_OVERLAYS: Final = "overlays"
BUCKET_BOOT: Final = "boot"
BUCKETS: Final = (BUCKET_NODES, BUCKET_PROFILES, BUCKET_IMAGES, BUCKET_OVERLAYS, BUCKET_BOOT)

API_PREFIX: Final = "/api/v1"
TOKEN_FILE: Final = "api.token"
# The embedded nats-server's client token (`wolfpack up`): no local user reaches KV without it.
NATS_TOKEN_FILE: Final = "nats.token"
# The key the embedded nats-server encrypts its JetStream store with (mode 0600).
NATS_KEY_FILE: Final = "nats.key"
DEFAULT_DATA: Final = "./var/wolfpack"
