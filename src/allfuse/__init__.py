"""allfuse: all-in-one, language-guided image fusion with restoration."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["FusionPipeline", "__version__"]


def __getattr__(name: str) -> Any:
    """Lazy `allfuse.FusionPipeline`, so `import allfuse` stays light (no torch import)."""
    if name == "FusionPipeline":
        from allfuse.pipeline import FusionPipeline

        return FusionPipeline
    raise AttributeError(f"module 'allfuse' has no attribute {name!r}")
