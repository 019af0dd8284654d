"""The Gradio app of `allfuse serve`: upload 2+ images, pick task / model / prompt / steps / seed, compare
input and output with a slider, read the detected task, download the PNG.

Served on 127.0.0.1 unless --host says otherwise; no telemetry, no share link, nothing fetched from
outside (Gradio's fonts are bundled). Errors reach the page as messages (gr.Error), never tracebacks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gradio as gr

from allfuse.tasks import CLASSICAL_DEFAULT
from allfuse.types import TASKS
from allfuse.web.backend import DemoBackend, DemoError, Fused

TITLE = "allfuse: language-guided image fusion"
INTRO = (
    "Upload **two or more** images of one scene, of one size: infrared + visible, an exposure bracket or "
    "a focus stack. The task is detected unless you choose it. Drag the slider on the result to compare "
    "it with an input."
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def fuse_clicked(
    backend: DemoBackend,
    files: list[str] | None,
    task: str,
    method: str,
    prompt: str,
    steps: float,
    seed: float,
    compare: str | None,
) -> tuple[tuple, str, str, Fused]:
    """The Fuse button: (slider images, status line, PNG path, the result for the compare radio); every
    failure is a gr.Error message."""
    try:
        result = backend.fuse(files, task, method, prompt, int(steps or 0), int(seed or 0))
    except DemoError as e:
        raise gr.Error(str(e), print_exception=False) from None
    except Exception as e:  # a bug or an exhausted machine: still one line, never a traceback
        raise gr.Error(f"fusion failed ({type(e).__name__}: {e})", print_exception=False) from None
    return slider_pair(result, compare), result.status(), str(result.png), result


def slider_pair(result: Fused | None, compare: str | None) -> tuple | None:
    """(the input chosen by the radio, the output) for the before/after slider."""
    if result is None:
        return None
    return result.inputs[_input_index(compare, len(result.inputs))], result.output


def _input_index(compare: str | None, n: int) -> int:
    """'input 2' -> 1; anything else -> 0."""
    try:
        return min(max(int(str(compare).split()[-1]) - 1, 0), n - 1)
    except ValueError:
        return 0


def compare_choices(files: list[str] | None) -> dict:
    """The 'compare with' radio after an upload: one choice per image."""
    names = [f"input {i + 1}" for i in range(max(2, len(files or [])))]
    return gr.update(choices=names, value=names[0])


def build_demo(backend: DemoBackend) -> gr.Blocks:
    """The page: inputs and options on the left, the before/after slider, status and PNG on the right."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(
                    label="Source images (2 or more, same size)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="sources",
                )
                with gr.Row():
                    task = gr.Dropdown(["auto", *TASKS], value="auto", label="Task", elem_id="task")
                    method = gr.Dropdown(
                        backend.choices, value=backend.choices[0], label="Model or method", elem_id="method"
                    )
                prompt = gr.Textbox(
                    label="Instruction (models only, optional)",
                    placeholder="e.g. remove the noise and fuse",
                    elem_id="prompt",
                )
                with gr.Row():
                    steps = gr.Slider(
                        0, 50, value=0, step=1, label="Steps (flow model; 0 = its default)", elem_id="steps"
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                compare = gr.Radio(["input 1", "input 2"], value="input 1", label="Compare with")
                run = gr.Button("Fuse", variant="primary", elem_id="fuse")
            with gr.Column(scale=3):
                slider = gr.ImageSlider(
                    label="Input | fused (drag to compare)", type="numpy", format="png", elem_id="slider"
                )
                status = gr.Markdown("Upload images and press **Fuse**.", elem_id="status")
                png = gr.File(label="Fused PNG (full size)", interactive=False, elem_id="png")
        last = gr.State(None)  # the last result, so the radio can switch the slider's input
        files.change(compare_choices, files, compare)
        compare.change(slider_pair, [last, compare], slider)
        run.click(
            lambda *a: fuse_clicked(backend, *a),
            [files, task, method, prompt, steps, seed, compare],
            [slider, status, png, last],
            show_progress="minimal",
        )
    return demo


def available_models(names: list[str]) -> list[str]:
    """The embedded models that are installed (a missing one is left out of the menu)."""
    from allfuse.model_folder import resolve_model_folder

    out = []
    for name in names:
        try:
            resolve_model_folder(name)
            out.append(name)
        except FileNotFoundError:
            pass
    return out


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    model: str | None = None,
    device: str | None = None,
    max_pixels: int | None = None,
) -> None:
    """Serve the demo until interrupted; `model` (a name or folder) is loaded now and listed first."""
    from allfuse.baselines import FUSIONS
    from allfuse.model_folder import EMBEDDED

    models = available_models(list(EMBEDDED))
    if model is not None:
        models = [model, *(m for m in models if m != model)]
    methods = sorted(set(CLASSICAL_DEFAULT.values())) + sorted(set(FUSIONS) - set(CLASSICAL_DEFAULT.values()))
    with tempfile.TemporaryDirectory(prefix="allfuse-serve-") as out:
        backend = DemoBackend(models, methods, Path(out), device=device, max_pixels=max_pixels)
        if models:
            backend.pipeline(models[0])  # a model that cannot load is an error now, not on the first click
        if host not in LOOPBACK:
            print(
                f"allfuse: serving on {host}: anyone who can reach this machine can use it", file=sys.stderr
            )
        demo = build_demo(backend)
        demo.queue(default_concurrency_limit=1).launch(
            server_name=host,
            server_port=port,
            share=False,
            max_file_size="200mb",
            footer_links=[],
            ssr_mode=False,
            quiet=False,
        )
