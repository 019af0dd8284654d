"""Training-data synthesis: degradations, task-aware pipeline, prompts, M3/control/seg targets, datasets.

Modules (none imports torch except `datasets`; nothing happens at import time):
  severity      the ONE table of degradation parameter ranges per severity level, and which task uses what
  degradations  pure photometric/optical ops ``(image, rng, spec) -> (image, params)``; ``OPS`` registry
  weather       rain, depth-based haze, snow (same contract)
  depth         depth providers for haze (offline heuristic default, optional Depth-Anything)
  pipeline      task-aware composition on a pair: crops, op sampling, weather routing
  prompts       offline paraphrase bank, MMAIF-style instructions, DiTFuse tagged template and parser
  m3, control, seg   DiTFuse training-data kinds (Sect. III-B2)
  samples       one function per sample kind -> `Sample`; shared by the CLI and the datasets
  datasets      torch datasets: on-the-fly synthesis and written shards
"""
