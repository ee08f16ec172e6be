"""bench: a declarative benchmark harness for video and image person re-identification."""

__version__ = "0.1.0"
