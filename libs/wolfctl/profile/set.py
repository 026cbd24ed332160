"""`wolfctl profile set`: shared with the other noun, see libs.wolfctl.verbs."""

from __future__ import annotations

from libs.wolfctl.kinds import PROFILE
from libs.wolfctl.verbs import make_set

command = make_set(PROFILE)
