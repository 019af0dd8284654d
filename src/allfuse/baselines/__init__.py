"""Classical baselines: fusion (average, max, Laplacian, DWT, GFF, Mertens, focus), restoration (NLM, DCP,
Richardson-Lucy, Wiener, unsharp "upsample") and their "restore then fuse" chains (e.g. ``nlm+gff``).

    from allfuse import baselines
    fused = baselines.fuse("gff", [ir, vis], task="vif")
    clean = baselines.restore("nlm", noisy)

Images are float32 in [0, 1], (H, W) or (H, W, 3); see `sources` for how colour is routed.
"""

from allfuse.baselines.registry import (
    CHAINS,
    FUSIONS,
    METHODS,
    RESTORATIONS,
    Baseline,
    fuse,
    get_method,
    restore,
)

__all__ = ["CHAINS", "FUSIONS", "METHODS", "RESTORATIONS", "Baseline", "fuse", "get_method", "restore"]
