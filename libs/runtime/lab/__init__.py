"""The boot lab: a real virtual machine network-booting from wolfpack on this machine.

rootfs (the image) → netns (a private network and a thread inside it) → stack (`wolfpack up
--dhcp` there, and the API calls the lab makes) → machine (a node and its QEMU) → session (all
of it, taken down again). console reads a console or a log line by line; events follows the
nodes' NATS events. `wolfpack demo` (libs/runtime/demo.py) and tests/e2e/test_boot_network.py
both use it.
"""
