"""The embedded synthetic pedestrian-video dataset: generator, cache and loader.

Pedestrians are drawn from the 14 joints of docs/methods.md with a walking cycle and dressed in part
attributes from small palettes; cameras change viewpoint, scale, jitter, background, light and
colour; occluders and misdetections come at configurable rates. See docs/synthetic.md.
"""

from bench.data.synthetic.config import GENERATOR_VERSION, GeneratorConfig
from bench.data.synthetic.load import load_tracklets
from bench.data.synthetic.store import ensure_generated, read_index

__all__ = [
    "GENERATOR_VERSION",
    "GeneratorConfig",
    "ensure_generated",
    "load_tracklets",
    "read_index",
]
