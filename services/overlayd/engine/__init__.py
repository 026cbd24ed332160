"""The overlay engine: overlay trees (shipped or site), sandboxed Jinja2 templates rendered per
node, deterministic gzip'd newc archives in the content store, and the plan of what to
re-render after a change. Pure library code: no NATS, no HTTP."""

from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.plan import Change, RenderPlan, plan
from services.overlayd.engine.sources import (
    OverlaySources,
    OverlayTree,
    ShippedOverlays,
    TreeEntry,
)
from services.overlayd.engine.wave_renderer import OverlayRenderer
from services.overlayd.engine.worker import NodeRender

__all__ = [
    "Change",
    "NodeRender",
    "OverlayRenderer",
    "OverlaySources",
    "OverlayTree",
    "RenderError",
    "RenderPlan",
    "ShippedOverlays",
    "TreeEntry",
    "plan",
]
