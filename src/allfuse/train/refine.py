"""Second training stage: the pixel-space refiner (allfuse.models.refine) behind a frozen trained DiT.

    allfuse train-refiner MODEL_FOLDER RUN_DIR [max_steps=N size=PX batch_size=B refiner.bands=2 ...]
    allfuse export RUN_DIR MODEL_FOLDER          # adds refiner.safetensors + refiner.json to the folder

Each step synthesizes degraded pairs exactly as the DiT's training did (same data config), runs the
frozen DiT and decoder to get the decoded fusion, and trains the refiner on
  |R - Y|_1 + grad_weight * |grad R - grad Y|_1        (Y: the fusion target; MMAIF Eq. (9)'s form)
with grad the Sobel magnitude |d/dx| + |d/dy| (grad_mode "magnitude", Eq. (9)) or the signed pair
(d/dx, d/dy) ("xy"), which also penalises a wrong edge orientation -- half of what Qabf scores -- plus,
with ssim_weight, ssim_weight * (1 - SSIM(R, Y)) (Wang et al. 2004; the SSIM loss of fusion networks
such as SwinFusion), which holds local structure where copying input detail would also copy its noise,
and with texture_weight, texture_weight * | |grad R| - max_i |grad X_i| |_1 over the CLEAN sources X_i
(SwinFusion's texture loss, MMAIF's reference [29]; objectives.pixel.texture_loss) on the kinds whose
output should carry its sources' edges (`texture_kinds`, some of TEXTURE_KINDS). The target alone is a
regression target: where the degraded inputs leave an edge uncertain, its L1 optimum is a softened
edge, while an edge-transfer score such as Qabf counts the edge at the strength of the strongest clean
source.
With `work_every = k`, every k-th step instead trains guided upsampling, the pipeline's `work_side` path:
a crop of WORK_FACTOR * size px whose latent path (encode, DiT, decode) runs on the inputs area-downscaled
to `size` px -- the DiT's own training scale -- and comes back bicubic, so the refiner learns to restore
the detail a half-size latent path cannot hold from the full-size inputs. Those steps take
batch_size / WORK_FACTOR**2 crops, the same pixel count.
With `correct`, the inputs first go through the model folder's input corrector (allfuse.models.correct)
for the tasks it runs for, as the pipeline does, so the refiner trains on what it sees at inference. A
refiner with a classical source (`refiner.classical`) gets each sample's classical fusion of its
(corrected) inputs, by the task's rule (refine_data.CLASSICAL_TASK).
With `stages`, the inputs go through all of the model folder's pre-fusion stages (allfuse.stages: stripe
removal, denoising, exposure gain, deblurring, input corrector), each for its tasks, in the data workers
(train.data.StagedDataset, as `allfuse train stages_from=MODEL` does for the DiT): the refiner then blends
inputs as restored as the pipeline's, not the raw degraded ones.
With `trainable`, only the named parts of the refiner train (e.g. [fine_tail], the head of a gain just
added by widening a shipped refiner, models/refine.py), so the rest keeps exactly what it learnt: a
refiner retrained whole behind a later DiT has lost sharpness and identity (allfuse-reg's model card).
One process; checkpoints, exact resume, EMA and the CSV log are those of the main loop.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from allfuse.data.samples import SAMPLE_KINDS
from allfuse.devices import autocast
from allfuse.model_folder import load_refiner, resolve_model_folder
from allfuse.models.refine import Refiner, RefinerConfig, classical_batch, widen_state_dict
from allfuse.objectives.refine import GRAD_MODES, TEXTURE_KINDS, refine_loss, texture_mask
from allfuse.train.data import step_generator
from allfuse.train.refine_data import (
    WORK_FACTOR,
    FrozenFusion,
    classical_tasks,
    refiner_batches,
    refiner_dataset,
    work_batch_size,
)
from allfuse.train.stage import Stage

VAL_SEED_OFFSET = 7_919  # validation samples come from a stream the training never draws


def check_kinds(kinds: object) -> None:
    """A task mix must map known sample kinds to numeric weights ({vif: 2, mef: 1})."""
    if not isinstance(kinds, dict) or not all(isinstance(w, int | float) for w in kinds.values()):
        raise ValueError(f"kinds must map sample kinds to weights, e.g. {{vif: 2, mef: 1}}, got {kinds!r}")
    unknown = sorted(set(kinds) - set(SAMPLE_KINDS))
    if unknown:
        raise ValueError(f"kinds: unknown {unknown}; choose from {', '.join(SAMPLE_KINDS)}")


@dataclass(frozen=True)
class RefineTrainConfig:
    """A refiner run: which DiT it serves and how it is trained."""

    model: str  # model folder (or embedded name) of the frozen DiT
    out_dir: str = "runs/refiner"
    refiner: RefinerConfig = field(default_factory=lambda: RefinerConfig(mix=True))
    size: int = 128  # crop size, px (the DiT's window)
    max_steps: int = 2000
    batch_size: int = 8
    lr: float = 5e-4
    warmup: int = 100
    clip: float = 1.0
    ema_decay: float = 0.995
    grad_weight: float = 1.0
    grad_mode: str = "magnitude"  # or "xy" (module doc)
    ssim_weight: float = 0.0
    texture_weight: float = 0.0  # SwinFusion texture loss against the clean sources (module doc)
    texture_kinds: tuple[str, ...] = TEXTURE_KINDS  # the sample kinds it applies to
    init_from: str | None = None  # model folder whose refiner starts this run (widened to `refiner`)
    # Names (prefixes) of the refiner's parameters that train, e.g. [fine_tail]; empty = all (module doc).
    trainable: tuple[str, ...] = ()
    kinds: dict[str, float] | None = None  # task mix of the training data; None = the DiT's own
    # Fields of the DiT's DataConfig to change for this run, e.g. {"n_weights": [3, 2, 2, 2]}.
    data_overrides: dict[str, object] = field(default_factory=dict)
    work_every: int = 0  # every k-th step trains guided upsampling (module doc); 0 = never
    correct: bool = False  # inputs through the model's input corrector first, as at inference (module doc)
    # inputs through all of the model's pre-fusion stages, corrector included, as at inference (module doc)
    stages: bool = False
    seed: int = 1
    threads: int = 0
    workers: int = 1
    log_every: int = 10
    ckpt_every: int = 250
    val_every: int = 250
    val_samples: int = 16

    def __post_init__(self) -> None:
        if self.work_every < 0:
            raise ValueError(f"work_every must be >= 0 (0 = never), got {self.work_every}")
        if self.ssim_weight < 0 or self.texture_weight < 0:
            raise ValueError(f"weights must be >= 0: ssim {self.ssim_weight}, texture {self.texture_weight}")
        if not self.texture_kinds or not set(self.texture_kinds) <= set(TEXTURE_KINDS):
            raise ValueError(f"texture_kinds must be some of {TEXTURE_KINDS}, got {self.texture_kinds}")
        if self.grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {', '.join(GRAD_MODES)}, got {self.grad_mode!r}")
        if self.kinds is not None:
            check_kinds(self.kinds)
        if self.stages and self.correct:
            raise ValueError("stages=true already runs the input corrector: drop correct=true")

    def to_dict(self) -> dict:
        """JSON-ready form (stored in checkpoints as {"kind": "refiner", ...})."""
        return {"kind": "refiner", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> RefineTrainConfig:
        """Inverse of to_dict."""
        values = {k: v for k, v in values.items() if k != "kind"}
        refiner = RefinerConfig.from_dict(values.get("refiner", {}))
        kinds = tuple(values.get("texture_kinds", TEXTURE_KINDS))
        trainable = tuple(values.get("trainable", ()))
        return cls(**{**values, "refiner": refiner, "texture_kinds": kinds, "trainable": trainable})


def train_refiner(cfg: RefineTrainConfig, until: int | None = None) -> Path:
    """Run (or resume) a refiner run to cfg.max_steps (or stop, checkpointed, at `until`)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    fusion = FrozenFusion(cfg.model, cfg.correct)  # stages: in the data (refiner_dataset)
    net = Refiner(cfg.refiner)
    if cfg.init_from:
        net.load_state_dict(initial_refiner_state(cfg.init_from, cfg.refiner))
    freeze_except(net, cfg.trainable)
    stage = Stage(net, cfg)
    k = cfg.work_every
    n_work = stage.step // k if k else 0  # guided-upsampling steps already taken: steps k-1, 2k-1, ...
    batches = refiner_batches(fusion, cfg, 1, cfg.batch_size, stage.step - n_work)
    work_batches = refiner_batches(fusion, cfg, WORK_FACTOR, work_batch_size(cfg), n_work) if k else None

    def train_step(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        factor = WORK_FACTOR if k and step % k == k - 1 else 1
        batch = fusion.corrected(next(work_batches if factor > 1 else batches))  # type: ignore[arg-type]
        gen = step_generator(cfg.seed, step, 0, 0)
        dec = fusion.decoded(batch, gen, factor)
        with autocast(dec.device):
            pred = net(dec, [batch["a"], batch["b"]], classical_input(net, batch))
        return refine_loss(
            pred.float(),
            batch["target"].float(),
            cfg.grad_weight,
            cfg.grad_mode,
            cfg.ssim_weight,
            cfg.texture_weight,
            (batch["clean_a"], batch["clean_b"]),
            texture_mask(batch["task_id"], cfg.texture_kinds),
        )

    def validate(ema: torch.nn.Module, step: int) -> None:
        validate_refiner(ema, fusion, cfg, step, out)

    return stage.run(train_step, validate, "refiner", until)


def freeze_except(net: torch.nn.Module, trainable: tuple[str, ...]) -> None:
    """Train only the parameters whose names start with one of `trainable` (all when it is empty); a
    prefix that names no parameter is an error listing the refiner's parts."""
    if not trainable:
        return
    names = [n for n, _ in net.named_parameters()]
    unknown = [t for t in trainable if not any(n.startswith(t) for n in names)]
    if unknown:
        parts = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"trainable: {unknown} name no parameter of this refiner; its parts: {parts}")
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith(tuple(trainable)))


def classical_input(net: torch.nn.Module, batch: dict) -> torch.Tensor | None:
    """The classical source of each sample of a batch when the refiner blends one (models/refine.py)."""
    if not net.cfg.classical:  # type: ignore[union-attr]
        return None
    return classical_batch([batch["a"], batch["b"]], classical_tasks(batch["task_id"]))


def initial_refiner_state(folder: str, cfg: RefinerConfig) -> dict[str, torch.Tensor]:
    """Weights of the refiner shipped in a model folder, for a run of config `cfg`: the same architecture,
    or its exact widening (two bands, a detail or base gain; models/refine.py); else an error naming both."""
    src = load_refiner(resolve_model_folder(folder))
    if src is None:
        raise FileNotFoundError(f"{folder}: has no refiner to start from")
    if src.cfg == cfg:
        return src.state_dict()
    try:
        return widen_state_dict(src.state_dict(), src.cfg, cfg)
    except ValueError:
        raise ValueError(f"{folder}: its refiner {src.cfg} cannot start a run of {cfg}") from None


@torch.no_grad()
def validate_refiner(
    net: torch.nn.Module, fusion: FrozenFusion, cfg: RefineTrainConfig, step: int, out: Path
) -> dict[str, float]:
    """PSNR to the target of the decoded fusion and of the refined one, on fixed held-in samples; with
    work_every also on guided-upsampling samples (the `_work` rows)."""
    net.eval()
    rows: dict[str, list[float]] = {}
    for factor in (1, WORK_FACTOR) if cfg.work_every else (1,):
        ds = refiner_dataset(fusion, cfg, cfg.seed + VAL_SEED_OFFSET, factor)
        tag = "_work" if factor > 1 else ""
        for i in range(cfg.val_samples):
            item = ds[i]
            batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in item.items()}
            batch = fusion.corrected(batch)
            dec = fusion.decoded(batch, torch.Generator().manual_seed(i), factor)
            with autocast(dec.device):
                ref = net(dec, [batch["a"], batch["b"]], classical_input(net, batch)).float().clamp(0, 1)
            for name, x in ((f"psnr_decoded{tag}", dec), (f"psnr_refined{tag}", ref)):
                mse = (x - batch["target"]).pow(2).mean().item()
                rows.setdefault(name, []).append(10 * np.log10(1.0 / max(mse, 1e-10)))
    means = {k: float(np.mean(v)) for k, v in rows.items()}
    with open(out / "val.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **means}) + "\n")
    return means
