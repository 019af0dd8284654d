"""Training the input corrector (allfuse.models.correct) on its own: degraded input -> its clean source.

    allfuse train-corrector MODEL_FOLDER RUN_DIR [max_steps=N size=PX batch_size=B corrector.width=32 ...]
                                                 [init_from=MODEL_FOLDER: continue its corrector]
    allfuse export RUN_DIR MODEL_FOLDER          # adds corrector.safetensors + corrector.json to the folder

Samples are synthesized as the model folder's DiT was trained (its training.json data config, fusion kinds
only: an M3 sample's blocks of different degradations are not a smooth map), and each degraded input is
scored against the clean source it was degraded from, in the low-frequency band the corrector is for:
  L = sum_i [ sum_{s in (4, 16)} | P_s(C(X_i)) - P_s(S_i) |_1 + w | grad P_2(C(X_i)) - grad P_2(S_i) |_1 ]
with P_s an area downscale by s and grad the signed Sobel pair (d/dx, d/dy), weight w = grad_weight. The
means alone are matched by an offset; the gradient term is what asks for contrast back (haze scales every
edge by t, so only a gain of 1 / t matches it), and it also charges a gain for the noise it amplifies.
Noise otherwise averages out of the downscaled terms.
With haze_weight > 0 the synthesis also says which inputs it hazed, and the image-mean dehazing strength
w of each input is pushed towards that label by a binary cross-entropy, haze_weight * BCE(mean w, hazed).
The L1 alone gives weak, conflicting gradients on w across a mixed batch (a clear photo and a hazy one can
have the same dark channel; measured: the change to clean inputs stayed at 12/255 for 750 steps), while
"was this input hazed" is a direct signal that also teaches w = 0, a pass-through, on clean inputs. Clean
samples (data.n_ops 0, the self pairs) teach the identity. No DiT runs: a step costs the synthesis.
One process; checkpoints, exact resume, EMA and the CSV log are those of the main loop.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from allfuse.config import build_config
from allfuse.data.samples import FUSION_KINDS, SAMPLE_KINDS
from allfuse.devices import autocast
from allfuse.model_folder import load_corrector, read_training, resolve_model_folder
from allfuse.models.correct import CORRECT_TASKS, Corrector, CorrectorConfig
from allfuse.ops import sobel_xy
from allfuse.train.config import DataConfig, TrainConfig, config_from_dict
from allfuse.train.data import EpochDataset, StepSampler, build_dataset
from allfuse.train.stage import Stage

VAL_SEED_OFFSET = 7_919  # validation samples come from a stream the training never draws
LOSS_SCALES = (4, 16)  # area-downscale factors of the loss's L1 terms (module doc)
GRAD_SCALE = 2  # area-downscale factor of its gradient term


@dataclass(frozen=True)
class CorrectTrainConfig:
    """A corrector run: whose data recipe it follows and how it is trained."""

    model: str  # model folder (or embedded name) whose training data config the samples follow
    out_dir: str = "runs/corrector"
    corrector: CorrectorConfig = field(default_factory=CorrectorConfig)
    init_from: str = ""  # model folder whose corrector (same architecture) starts this run; "" = scratch
    size: int = 256  # crop size, px
    max_steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 100
    clip: float = 1.0
    ema_decay: float = 0.995
    grad_weight: float = 1.0  # w of the loss's gradient term (module doc)
    haze_weight: float = 0.0  # weight of the hazed-or-not cross-entropy on the dehazing strength
    kinds: dict[str, float] = field(default_factory=lambda: {"vif": 1.3, "mef": 1.0, "mff": 1.0})
    # Fields of the DiT's DataConfig to change for this run, e.g. {"n_weights": [2, 2, 2, 2]}.
    data_overrides: dict[str, object] = field(default_factory=dict)
    seed: int = 2
    threads: int = 0
    workers: int = 1
    log_every: int = 10
    ckpt_every: int = 250
    val_every: int = 250
    val_samples: int = 32
    bf16: bool = True  # the network under bf16 autocast (the coefficients are applied in fp32)

    def __post_init__(self) -> None:
        if not isinstance(self.kinds, dict) or not self.kinds:
            raise ValueError(f"kinds must map fusion tasks to weights, e.g. {{vif: 2}}, got {self.kinds!r}")
        unknown = sorted(set(self.kinds) - set(FUSION_KINDS))
        if unknown:
            raise ValueError(f"kinds: {unknown} are not fusion tasks; the corrector trains on {FUSION_KINDS}")

    def to_dict(self) -> dict:
        """JSON-ready form (stored in checkpoints as {"kind": "corrector", ...})."""
        return {"kind": "corrector", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> CorrectTrainConfig:
        """Inverse of to_dict."""
        values = {k: v for k, v in values.items() if k != "kind"}
        return cls(**{**values, "corrector": CorrectorConfig.from_dict(values.get("corrector", {}))})


def corrector_data(cfg: CorrectTrainConfig, seed: int):
    """The synthesis dataset: the model folder's data recipe at `size` px, fusion kinds only."""
    base: TrainConfig = config_from_dict(read_training(resolve_model_folder(cfg.model))["dit"])
    data = dataclasses.replace(base.data, size=cfg.size, kinds=dict(cfg.kinds))
    if cfg.data_overrides:
        data = build_config(DataConfig, dict(cfg.data_overrides), prefix="data.", base=data)
    return build_dataset(dataclasses.replace(base, data=data), seed)


def initial_corrector_state(folder: str, cfg: CorrectorConfig) -> dict[str, torch.Tensor]:
    """Weights of the corrector shipped in a model folder, for a run of config `cfg`: the same architecture
    and strength prior (the tasks it runs for may differ), else an error naming both."""
    src = load_corrector(resolve_model_folder(folder))
    if src is None:
        raise FileNotFoundError(f"{folder}: has no corrector to start from")
    if dataclasses.replace(src.cfg, tasks=cfg.tasks) != cfg:
        raise ValueError(f"{folder}: its corrector {src.cfg} cannot start a run of {cfg}")
    return src.state_dict()


def corrector_task(task_id: torch.Tensor) -> torch.Tensor:
    """Sample kind indices (SAMPLE_KINDS) -> the corrector's task indices (CORRECT_TASKS)."""
    return torch.tensor([CORRECT_TASKS.index(SAMPLE_KINDS[int(i)]) for i in task_id.reshape(-1)])


def hazed(meta: list[str]) -> torch.Tensor:
    """(B, 2) float: which input of each sample the synthesis hazed (from the samples' metadata)."""
    rows = []
    for text in meta:
        ops = json.loads(text).get("ops", [])
        rows.append([float(any(op["op"] == "haze" and j in op["images"] for op in ops)) for j in (0, 1)])
    return torch.tensor(rows)


def correct_loss(
    net: Corrector, batch: dict, grad_weight: float, haze_weight: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Low-band L1 and gradient loss of each corrected input to its clean source, and the haze label's
    cross-entropy on the dehazing strength (module doc)."""
    outs, strength = net.forward_with_strength([batch["a"], batch["b"]], corrector_task(batch["task_id"]))
    l1 = grad = torch.zeros((), dtype=torch.float32)
    for out, clean in zip(outs, (batch["clean_a"], batch["clean_b"]), strict=True):
        out, clean = out.float(), clean.float()
        for s in LOSS_SCALES:
            l1 = l1 + (F.avg_pool2d(out, s) - F.avg_pool2d(clean, s)).abs().mean()
        g_out, g_clean = (sobel_xy(F.avg_pool2d(x, GRAD_SCALE)) for x in (out, clean))
        grad = grad + (g_out - g_clean).abs().mean()
    loss = l1 + grad_weight * grad
    logs = {"l1": l1.item(), "grad": grad.item()}
    if haze_weight:
        label = hazed(batch["meta"]).to(strength.device)
        bce = F.binary_cross_entropy(strength.float().clamp(1e-6, 1 - 1e-6), label)
        loss = loss + haze_weight * bce
        logs["haze_bce"] = bce.item()
    return loss, {"loss": loss.item(), **logs}


def train_corrector(cfg: CorrectTrainConfig, until: int | None = None) -> Path:
    """Run (or resume) a corrector run to cfg.max_steps (or stop, checkpointed, at `until`)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    net = Corrector(cfg.corrector)
    if cfg.init_from:
        net.load_state_dict(initial_corrector_state(cfg.init_from, cfg.corrector))
    stage = Stage(net, cfg)
    base = corrector_data(cfg, cfg.seed)
    loader = DataLoader(
        EpochDataset(base, len(base)),
        batch_size=cfg.batch_size,
        sampler=StepSampler(len(base), cfg.batch_size, 0, 1, cfg.seed, stage.step),
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
    )
    batches = iter(loader)

    def train_step(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = next(batches)
        with autocast(batch["a"].device, cfg.bf16):
            return correct_loss(net, batch, cfg.grad_weight, cfg.haze_weight)

    def validate(ema: torch.nn.Module, step: int) -> None:
        validate_corrector(ema, cfg, step, out)

    return stage.run(train_step, validate, "corrector", until)


@torch.no_grad()
def validate_corrector(net: Corrector, cfg: CorrectTrainConfig, step: int, out: Path) -> dict[str, float]:
    """On fixed held-in samples, the low-band (area / 4) mean absolute error to the clean source of each
    degraded input before (`l1_input`) and after (`l1_corrected`) correction, and the mean change the
    corrector makes to inputs no op touched (`change_clean`, in 1/255 steps: 0 is a perfect pass-through)."""
    net.eval()
    ds = corrector_data(cfg, cfg.seed + VAL_SEED_OFFSET)
    rows: dict[str, list[float]] = {}
    for i in range(cfg.val_samples):
        item = ds[i]
        xs = [item["a"][None], item["b"][None]]
        outs = net(xs, corrector_task(item["task_id"]))
        ops = json.loads(item["meta"]).get("ops", [])
        for j, (x, y, clean) in enumerate(zip(xs, outs, (item["clean_a"], item["clean_b"]), strict=True)):
            low = F.avg_pool2d(y.clamp(0, 1), 4)
            if any(j in op["images"] for op in ops):
                ref = F.avg_pool2d(clean[None], 4)
                rows.setdefault("l1_input", []).append(float((F.avg_pool2d(x, 4) - ref).abs().mean()))
                rows.setdefault("l1_corrected", []).append(float((low - ref).abs().mean()))
            else:
                change = 255 * float((low - F.avg_pool2d(x, 4)).abs().mean())
                rows.setdefault("change_clean", []).append(change)
    means = {k: float(np.mean(v)) for k, v in rows.items()}
    with open(out / "val.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **means}) + "\n")
    return means
