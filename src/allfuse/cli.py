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
from allfuse.train.tokenizer import add_train_tokenizer_parser


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
        "train",
        help="train a FusionDiT or a JointDiT (torchrun --nproc_per_node=N -m allfuse train ... for DDP)",
    )
    p.add_argument(
        "--config",
        default="tiny-reg",
        help="a preset (tiny-reg, tiny-fm, tiny-ditfuse, tiny-ditfuse-lora init_from=RUN) or a YAML file",
    )
    p.add_argument(
        "overrides", nargs="*", help="key=value overrides, dotted for nested fields (model.depth=4)"
    )
    p.add_argument("--max-steps", type=int, default=None, help="shorthand for max_steps=N")
    p.add_argument("--out", default=None, help="shorthand for out_dir=DIR")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument("--until", type=int, default=None, help="stop (checkpointed) at step N; rerun to go on")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a model from a preset/YAML config plus overrides."""
    from allfuse.train.config import check_runnable, load_train_config
    from allfuse.train.loop import train

    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    try:
        cfg = load_train_config(args.config, overrides)
        check_runnable(cfg)
    except (KeyError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    out = train(cfg, resume=not args.fresh, until=args.until)
    print(f"run folder: {out}")
    return 0


def _add_stage_parser(
    sub: argparse._SubParsersAction, name: str, cfg_cls: type, help: str, description: str, func
) -> None:
    """A `train-refiner` / `train-corrector` subcommand: MODEL OUT key=value... over `cfg_cls`."""
    from allfuse.config import describe_fields

    keys = "\n".join("  " + line for line in describe_fields(cfg_cls(model="MODEL")))
    p = sub.add_parser(
        name,
        help=help,
        description=description + " Settings are key=value overrides, dotted for nested fields, as for "
        "`allfuse train`.",
        epilog=f"keys and defaults:\n{keys}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="allfuse-reg, allfuse-fm or a model folder")
    p.add_argument("out", type=Path, help="run folder (checkpoints, log.csv, val.jsonl)")
    p.add_argument("overrides", nargs="*", help="key=value settings (listed below)")
    p.add_argument("--config", default=None, help="a YAML file of the same keys, applied before overrides")
    p.add_argument("--until", type=int, default=None, help="stop (checkpointed) at this step")
    p.set_defaults(func=func, cfg_cls=cfg_cls)


def _add_train_stages(sub: argparse._SubParsersAction) -> None:
    from allfuse.train.correct import CorrectTrainConfig
    from allfuse.train.gate import GateTrainConfig
    from allfuse.train.refine import RefineTrainConfig

    _add_stage_parser(
        sub,
        "train-refiner",
        RefineTrainConfig,
        "train the pixel-space refiner behind a trained model (resumes from OUT)",
        "Train the refiner behind a frozen DiT (MODEL), e.g. refiner.bands=2 max_steps=5000 "
        "data_overrides.n_weights=[3,2,2,2].",
        cmd_train_stage,
    )
    _add_stage_parser(
        sub,
        "train-corrector",
        CorrectTrainConfig,
        "train the input corrector of a model (resumes from OUT)",
        "Train the whole-image input corrector on MODEL's data recipe, e.g. max_steps=3000 "
        "corrector.width=32 data_overrides.n_weights=[2,2,2,2].",
        cmd_train_stage,
    )
    _add_stage_parser(
        sub,
        "train-gate",
        GateTrainConfig,
        "fit the clean-input gate of a model (resumes its samples from OUT)",
        "Score MODEL's fusion against its classical teacher rule on degraded and clean training pairs and "
        "fit the gate that picks between them, e.g. samples=1800 clean_share=0.3. --until N stops after "
        "N samples, without fitting.",
        cmd_train_stage,
    )


def _add_train_denoiser(sub: argparse._SubParsersAction) -> None:
    from allfuse.config import describe_fields
    from allfuse.train.denoiser import DenoiseTrainConfig

    keys = "\n".join("  " + line for line in describe_fields(DenoiseTrainConfig()))
    p = sub.add_parser(
        "train-denoiser",
        help="train the denoising stage's network on clean images (resumes from OUT)",
        description="Train the learned denoiser on synthetic noise over the clean images under the `data` "
        "folders (validation pairs of a splits.json left out), e.g. data='[../shared/data]' max_steps=5000. "
        "Settings are key=value overrides, dotted for nested fields, as for `allfuse train`.",
        epilog=f"keys and defaults:\n{keys}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="run folder (checkpoints, log.csv, val.jsonl)")
    p.add_argument("overrides", nargs="*", help="key=value settings (listed below)")
    p.add_argument("--config", default=None, help="a YAML file of the same keys, applied before overrides")
    p.add_argument("--until", type=int, default=None, help="stop (checkpointed) at this step")
    p.set_defaults(func=cmd_train_denoiser)


def cmd_train_denoiser(args: argparse.Namespace) -> int:
    """Train (or resume) a denoiser run."""
    from allfuse.config import load_config
    from allfuse.train.denoiser import DenoiseTrainConfig, train_denoiser

    try:
        base = DenoiseTrainConfig(out_dir=str(args.out))
        cfg = load_config(DenoiseTrainConfig, base, args.config, args.overrides)
        out = train_denoiser(cfg, until=args.until)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    print(f"run folder: {out}")
    return 0


def cmd_train_stage(args: argparse.Namespace) -> int:
    """Train (or resume) a refiner or corrector run."""
    from allfuse.config import load_config
    from allfuse.train.correct import CorrectTrainConfig, train_corrector
    from allfuse.train.gate import GateTrainConfig, train_gate
    from allfuse.train.refine import train_refiner

    runs = {CorrectTrainConfig: train_corrector, GateTrainConfig: train_gate}
    run = runs.get(args.cfg_cls, train_refiner)
    try:
        base = args.cfg_cls(model=args.model, out_dir=str(args.out))
        cfg = load_config(args.cfg_cls, base, args.config, args.overrides)
        out = run(cfg, until=args.until)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    print(f"run folder: {out}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="turn a training run/checkpoint into a model folder for --model")
    p.add_argument("run", type=Path, help="run folder (its latest checkpoint) or checkpoint folder")
    p.add_argument(
        "out",
        type=Path,
        help="model folder to write (model.safetensors + config.json); a refiner or corrector run "
        "is added to an existing one",
    )
    p.add_argument("--weights", choices=["ema", "raw"], default="ema", help="EMA (inference) or raw weights")
    p.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16", help="stored precision")
    p.add_argument("--work-side", type=int, help="refiner runs: the model's default fuse --work-side, px")
    p.add_argument(
        "--tasks", help="corrector runs: the tasks the model runs it for, e.g. mef,mff (default: all)"
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a checkpoint's EMA (or raw) network as an inference folder; a refiner run's network is
    added to an existing model folder."""
    import torch

    from allfuse.model_folder import GATE_CONFIG, save_pretrained, save_refiner
    from allfuse.train.checkpoint import load_checkpoint
    from allfuse.train.config import config_from_dict
    from allfuse.train.network import trained_network

    if (args.run / GATE_CONFIG).is_file():  # a train-gate run: a fitted config, no checkpoint
        return export_gate(args)
    try:
        saved = load_checkpoint(args.run)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    weights = saved.ema if args.weights == "ema" and saved.ema is not None else saved.model
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    step = saved.state.get("step", "?")
    if saved.config.get("kind") == "corrector":
        return export_corrector(saved, weights, dtype, args)
    if saved.config.get("kind") == "denoiser":
        return export_denoiser(saved, weights, dtype, args)
    if args.tasks is not None:
        raise CliError("--tasks belongs to a corrector run's export (the tasks it is applied to)")
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
    model = trained_network(cfg, weights)  # LoRA adapters merged: the folder holds plain weights
    folder = save_pretrained(model, cfg, args.out, dtype=dtype)
    if cfg.arch == "joint" and cfg.init_from:
        record_base(folder, cfg.init_from)
        if cfg.only_mask_head:  # the network is the base's: so are the tasks it was trained on
            keep_base_tags(folder, cfg.init_from)
    merged = f", LoRA rank {cfg.lora.rank} merged" if cfg.arch == "joint" and cfg.lora.rank else ""
    print(f"exported step {step} ({args.weights}, {args.dtype}{merged}) of {saved.path} -> {folder}")
    return 0


def export_gate(args: argparse.Namespace) -> int:
    """Add a train-gate run's gate.json to an existing model folder: the run's tasks' gates replace the
    folder's, its gates of other tasks stay."""
    import dataclasses

    from allfuse.model_folder import load_gate, save_gate

    given = [f for f, v in (("--work-side", args.work_side), ("--tasks", args.tasks)) if v is not None]
    if given:
        raise CliError(f"{' and '.join(given)}: not an option of a gate run's export")
    try:
        gate = load_gate(args.run)
        if gate is None:
            raise FileNotFoundError(f"{args.run}: no gate.json (has the train-gate run finished?)")
        # A run fitted for some tasks replaces those tasks' gates; the folder's gates of other tasks stay.
        old = load_gate(Path(args.out)) if Path(args.out).is_dir() else None
        kept = sorted(set(old.tasks) - set(gate.tasks)) if old is not None else []
        fitted = ", ".join(gate.tasks)
        if old is not None and kept:
            gate = dataclasses.replace(gate, tasks={**old.tasks, **gate.tasks})
        folder = save_gate(gate, args.out)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from None
    note = f"; the folder's gates for {', '.join(kept)} stay" if kept else ""
    print(f"exported the gate of {args.run} ({fitted}) -> {folder}{note}")
    return 0


def export_denoiser(saved, weights: dict, dtype, args: argparse.Namespace) -> int:
    """Add a denoiser run's network to an existing model folder (denoiser.safetensors + denoiser.json)."""
    from allfuse.model_folder import save_denoiser
    from allfuse.models.denoiser import Denoiser
    from allfuse.train.denoiser import DenoiseTrainConfig

    if args.tasks is not None or args.work_side is not None:
        raise CliError("--tasks and --work-side do not apply to a denoiser run (denoise.json's tasks do)")
    dcfg = DenoiseTrainConfig.from_dict(saved.config)
    net = Denoiser(dcfg.denoiser)
    net.load_state_dict(weights)
    step = saved.state.get("step", "?")
    try:
        folder = save_denoiser(net, args.out, dtype=dtype, info={"step": step, **dcfg.to_dict()})
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f"exported denoiser step {step} ({args.weights}, {args.dtype}) of {saved.path} -> {folder}")
    return 0


def export_corrector(saved, weights: dict, dtype, args: argparse.Namespace) -> int:
    """Add a corrector run's network to an existing model folder."""
    import dataclasses

    from allfuse.model_folder import save_corrector
    from allfuse.models.correct import Corrector
    from allfuse.train.correct import CorrectTrainConfig

    if args.work_side is not None:
        raise CliError("--work-side belongs to a refiner run's export (the refiner restores full size)")
    ccfg = CorrectTrainConfig.from_dict(saved.config)
    try:
        tasks = tuple(args.tasks.split(",")) if args.tasks else ccfg.corrector.tasks
        net = Corrector(dataclasses.replace(ccfg.corrector, tasks=tasks))
    except ValueError as e:
        raise CliError(f"--tasks {args.tasks}: {e}") from None
    net.load_state_dict(weights)
    step = saved.state.get("step", "?")
    try:
        info = {"step": step, **dataclasses.replace(ccfg, corrector=net.cfg).to_dict()}
        folder = save_corrector(net, args.out, dtype=dtype, info=info)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f"exported corrector step {step} ({args.weights}) of {saved.path} -> {folder}")
    return 0


def keep_base_tags(folder: Path, base: str) -> None:
    """Add the base model's task tags to the folder's config.json (a head trained alone on a frozen network
    adds its own tags to the base's, it takes none away)."""
    import json

    from allfuse.io import atomic_write_text
    from allfuse.model_folder import CONFIG, read_json_object, read_model_config, resolve_model_folder

    theirs = read_model_config(resolve_model_folder(base)).tags
    cfg = read_json_object(folder / CONFIG)
    cfg["tags"] = [*theirs, *(t for t in cfg.get("tags", []) if t not in theirs)]
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2))


def record_base(folder: Path, base: str) -> None:
    """Add how the base model of a fine-tuned run was trained to the folder's training.json ("base")."""
    from allfuse.model_folder import read_training, resolve_model_folder, write_training

    try:
        record = read_training(resolve_model_folder(base))
    except (FileNotFoundError, ValueError) as e:
        print(f"note: how the base model was trained is not recorded ({e})")
        return
    write_training(folder, {**read_training(folder), "base": record})


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the web demo in your browser (needs: pip install 'allfuse[web]')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--model", default=None, help="model listed first and loaded at start (default allfuse-reg)"
    )
    p.add_argument("--device", default=None, help="where the models run: cpu (default), cuda, mps, ...")
    p.add_argument("--max-pixels", type=int, help="refuse larger uploads (default as for fuse; 0 = no limit)")
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
    _add_train_stages(sub)
    _add_train_denoiser(sub)
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
