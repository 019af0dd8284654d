"""The `allfuse` command line: thin subcommands over the Python API."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from allfuse.data.synth_cli import add_synth_parser
from allfuse.fuse_cli import CliError, add_fuse_parser, check_device_and_pixels, check_writable_folder
from allfuse.io import ImageError, max_pixels_limit
from allfuse.tokenizer.train import add_train_tokenizer_parser


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are CliErrors: one line and exit status 2, without the usage dump."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise CliError(f"{message} (see {self.prog} --help)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score methods on dataset folders and write tables, JSON and HTML")
    p.add_argument("--data", required=True, help="dataset folder(s), comma-separated")
    p.add_argument(
        "--methods",
        required=True,
        help="comma-separated: classical methods and chains (gff, nlm+gff), models (allfuse-reg, "
        "allfuse-fm, a model folder)",
    )
    p.add_argument("--metrics", default="all", help="'all' or comma-separated metric names")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--limit", type=int, default=None, help="at most N >= 1 pairs per dataset")
    p.add_argument("--format", default="md,csv,json,html", help="any of md,csv,json,html")
    p.add_argument("--keep", type=int, default=4, help="pairs per dataset shown in the HTML grid")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate methods x datasets x metrics and write the requested report formats."""
    from allfuse.evaluate import evaluate, method_fns, resolve_metric_names
    from allfuse.report import parse_formats, write_report

    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit}: give at least 1 pair per dataset")
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out}: is a file; give the report folder")
    check_writable_folder(args.out, f"--out {args.out}")
    max_pixels_limit()  # a bad $ALLFUSE_MAX_PIXELS is one error now, not one per pair
    method_names = [m for m in (s.strip() for s in args.methods.split(",")) if m]
    if not method_names:
        raise CliError("--methods is empty")
    try:
        formats = parse_formats(args.format)
        names = resolve_metric_names(args.metrics)
        methods = method_fns(method_names)  # every name checked before any model loads; each loads once
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None
    dirs = [d.strip() for d in args.data.split(",") if d.strip()]
    result = evaluate(dirs, methods, names, limit=args.limit, keep_samples=args.keep)
    for path in write_report(result, args.out, formats):
        print(f"wrote {path}")
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not result.rows:
        raise CliError("no pair could be evaluated")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a FusionDiT (torchrun --nproc_per_node=N -m allfuse train ... for DDP)"
    )
    p.add_argument("--config", default="tiny-reg", help="a preset (tiny-reg, tiny-fm) or a YAML file")
    p.add_argument(
        "overrides", nargs="*", help="key=value overrides, dotted for nested fields (model.depth=4)"
    )
    p.add_argument("--max-steps", type=int, default=None, help="shorthand for max_steps=N")
    p.add_argument("--out", default=None, help="shorthand for out_dir=DIR")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument(
        "--until",
        type=int,
        default=None,
        help="stop (checkpointed) at this step of the schedule; run again to continue",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a model from a preset/YAML config plus overrides."""
    from allfuse.train.config import load_train_config
    from allfuse.train.loop import train

    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    try:
        cfg = load_train_config(args.config, overrides)
    except (KeyError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    out = train(cfg, resume=not args.fresh, until=args.until)
    print(f"run folder: {out}")
    return 0


def _add_train_refiner(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-refiner",
        help="train the pixel-space refiner behind a trained model (resumes from OUT)",
    )
    p.add_argument("model", help="allfuse-reg, allfuse-fm or a model folder: the frozen DiT")
    p.add_argument("out", type=Path, help="run folder (checkpoints, log.csv, val.jsonl)")
    p.add_argument("--steps", type=int, default=2000, help="total schedule length")
    p.add_argument("--until", type=int, default=None, help="stop (checkpointed) at this step")
    p.add_argument("--size", type=int, default=128, help="training crop size, px")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    p.add_argument("--width", type=int, default=32, help="refiner base width")
    p.add_argument("--blocks", default="1,2,2", help="NAF blocks per U-Net level, finest first")
    p.add_argument(
        "--mix",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="predict per-pixel blend weights over the decoded fusion and the inputs (models/refine.py)",
    )
    p.add_argument(
        "--bands", type=int, default=1, choices=(1, 2), help="with --mix: 2 = separate base / detail blends"
    )
    p.add_argument(
        "--detail-gain",
        type=float,
        default=0.0,
        help="with --bands 2: also predict a per-pixel gain in [1/M, M] on the detail band (0 = off)",
    )
    p.add_argument("--grad-weight", type=float, default=1.0, help="weight of the gradient L1 term")
    p.add_argument(
        "--grad-mode",
        choices=("magnitude", "xy"),
        default="magnitude",
        help="gradient term on Sobel magnitudes (MMAIF Eq. 9) or on signed (d/dx, d/dy), orientation too",
    )
    p.add_argument("--ssim-weight", type=float, default=0.0, help="weight of a (1 - SSIM) term")
    p.add_argument(
        "--texture-weight",
        type=float,
        default=0.0,
        help="weight of SwinFusion's texture loss: |grad R| against the strongest clean-source gradient",
    )
    p.add_argument(
        "--texture-kinds",
        default="vif,mef,mff,m3",
        help="sample kinds the texture loss applies to (some of vif, mef, mff, m3)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="model folder (or embedded name) whose refiner starts it, widened to --bands / --detail-gain",
    )
    p.add_argument(
        "--kinds",
        default=None,
        help="training task mix, e.g. vif=2,mef=1,mff=1,m3=0.5 (default: the DiT's own data.kinds)",
    )
    p.add_argument(
        "--data-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a field of the DiT's data config for this run, e.g. n_weights=[3,2,2,2] (repeatable)",
    )
    p.add_argument(
        "--work-every",
        type=int,
        default=0,
        help="every K-th step trains guided upsampling behind a half-size latent path (fuse --work-side)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--workers", type=int, default=1, help="data loader processes")
    p.set_defaults(func=cmd_train_refiner)


def _int_tuple(text: str, flag: str) -> tuple[int, ...]:
    """'1,2,2' -> (1, 2, 2); a clear error otherwise."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CliError(f"{flag} {text!r}: give comma-separated integers, e.g. 1,2,2") from None


def _kinds(text: str) -> dict[str, float]:
    """'vif=2,mef=1' -> {'vif': 2.0, 'mef': 1.0}; a clear error otherwise."""
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise CliError(f"--kinds {text!r}: give kind=weight pairs, e.g. vif=2,mef=1,mff=1") from None


def _data_overrides(items: list[str]) -> dict[str, object]:
    """['n_weights=[3,2,2,2]'] -> {'n_weights': [3, 2, 2, 2]} (YAML values); a clear error otherwise."""
    import yaml

    from allfuse.train.config import DataConfig, build_config

    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--data-override {item!r}: give KEY=VALUE, e.g. n_weights=[3,2,2,2]")
        out[key.strip()] = yaml.safe_load(text)
    try:
        build_config(DataConfig, dict(out), prefix="data.")
    except (KeyError, ValueError, TypeError) as e:
        raise CliError(f"--data-override: {e}") from None
    return out


def cmd_train_refiner(args: argparse.Namespace) -> int:
    """Train (or resume) a refiner run."""
    from allfuse.models.refine import RefinerConfig
    from allfuse.train.refine import RefineTrainConfig, train_refiner

    try:
        cfg = RefineTrainConfig(
            model=args.model,
            out_dir=str(args.out),
            refiner=RefinerConfig(
                width=args.width,
                blocks=_int_tuple(args.blocks, "--blocks"),
                mix=args.mix,
                bands=args.bands,
                detail_gain=args.detail_gain,
            ),
            grad_weight=args.grad_weight,
            grad_mode=args.grad_mode,
            ssim_weight=args.ssim_weight,
            texture_weight=args.texture_weight,
            texture_kinds=tuple(k.strip() for k in args.texture_kinds.split(",")),
            init_from=args.init_from,
            kinds=_kinds(args.kinds) if args.kinds else None,
            data_overrides=_data_overrides(args.data_override),
            work_every=args.work_every,
            size=args.size,
            max_steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            threads=args.threads,
            workers=args.workers,
        )
        out = train_refiner(cfg, until=args.until)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f"run folder: {out}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="turn a training run/checkpoint into a model folder for --model")
    p.add_argument("run", type=Path, help="run folder (its latest checkpoint) or checkpoint folder")
    p.add_argument("out", type=Path, help="model folder to write (model.safetensors + config.json)")
    p.add_argument("--weights", choices=["ema", "raw"], default="ema", help="EMA (inference) or raw weights")
    p.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16", help="stored precision")
    p.add_argument(
        "--work-side",
        type=int,
        default=None,
        help="refiner runs: the model's default latent-path long side, px (fuse --work-side)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a checkpoint's EMA (or raw) network as an inference folder; a refiner run's network is
    added to an existing model folder."""
    import torch

    from allfuse.models import FusionDiT
    from allfuse.pipeline import save_pretrained, save_refiner
    from allfuse.train.checkpoint import load_checkpoint
    from allfuse.train.config import config_from_dict

    try:
        saved = load_checkpoint(args.run)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    weights = saved.ema if args.weights == "ema" and saved.ema is not None else saved.model
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    step = saved.state.get("step", "?")
    if saved.config.get("kind") == "refiner":
        from allfuse.models.refine import Refiner
        from allfuse.train.refine import RefineTrainConfig

        rcfg = RefineTrainConfig.from_dict(saved.config)
        net = Refiner(rcfg.refiner)
        net.load_state_dict(weights)
        try:
            info = {"step": step, **rcfg.to_dict()}
            folder = save_refiner(net, args.out, dtype=dtype, info=info, work_side=args.work_side)
        except (FileNotFoundError, ValueError) as e:
            raise CliError(str(e)) from None
        print(f"exported refiner step {step} ({args.weights}, {args.dtype}) of {saved.path} -> {folder}")
        return 0
    if args.work_side is not None:
        raise CliError("--work-side belongs to a refiner run's export (the refiner restores full size)")
    cfg = config_from_dict(saved.config)
    model = FusionDiT(cfg.model)
    model.load_state_dict(weights)
    folder = save_pretrained(model, cfg, args.out, dtype=dtype)
    print(f"exported step {step} ({args.weights}, {args.dtype}) of {saved.path} -> {folder}")
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the web demo in your browser (needs: pip install 'allfuse[web]')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--model", default=None, help="model listed first and loaded at start (default allfuse-reg)"
    )
    p.add_argument("--device", default=None, help="where the models run: cpu (default), cuda, mps, ...")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse larger uploads (default as for fuse; 0 = no limit)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the web demo until interrupted."""

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: give a port in 1..65535")
    max_pixels = check_device_and_pixels(args)
    try:
        from allfuse.web.app import serve
    except ImportError as e:
        raise CliError(f"allfuse serve needs the web extra ({e}): pip install 'allfuse[web]'") from None
    from allfuse.web.backend import DemoError

    try:
        serve(args.host, args.port, args.model, args.device, max_pixels)
    except DemoError as e:
        raise CliError(str(e)) from None
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise CliError(f"cannot serve on {args.host}:{args.port} ({e})") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = ArgumentParser(prog="allfuse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_fuse_parser(sub)
    _add_eval(sub)
    add_synth_parser(sub)
    _add_train(sub)
    add_train_tokenizer_parser(sub)
    _add_train_refiner(sub)
    _add_export(sub)
    _add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `allfuse` console script."""
    # Pillow logs some damaged-file details before raising; the error we print says what matters, once.
    pil_log = logging.getLogger("PIL")
    if not pil_log.handlers:
        pil_log.addHandler(logging.NullHandler())
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (CliError, ImageError) as e:
        print(f"allfuse: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
