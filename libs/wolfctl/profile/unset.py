"""`wolfctl profile unset`: shared with the other noun, see libs.wolfctl.verbs."""

from __future__ import annotations

from libs.wolfctl.kinds import PROFILE
from libs.wolfctl.verbs import make_unset

command = make_unset(PROFILE)
