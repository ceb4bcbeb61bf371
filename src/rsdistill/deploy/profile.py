"""Size and speed of a model as deployed (logits only, no training-time modules).

:func:`measure` gives what compression bought: parameters, FLOPs (``torch.utils.flop_counter``:
convolutions and matrix products, 2 FLOPs per multiply-accumulate, as published MAC counts are
doubled), the size of the float ONNX file, and latency at each batch size as the median of repeated
runs after a warm-up, under PyTorch and under onnxruntime, on the CPU and on CUDA where present.
:func:`comparison` sets a student beside its teacher with the teacher / student ratios (and the
inverse); :func:`quick_cost` is the cheap measure the demo and `rsdistill report` quote.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models import MODELS, LogitsOnly, ModelAdapter, build_model, count_parameters
from ..reports.tables import Table

RUNTIMES = ("pytorch", "onnxruntime")
RUNTIME_TITLES = {"pytorch": "PyTorch", "onnxruntime": "onnxruntime"}


def median_ms(run: Callable[[], Any], warmup: int, repeats: int, device: torch.device | None = None) -> float:
    """Median wall time of ``run()`` in milliseconds, after ``warmup`` untimed calls (allocator,
    kernel selection and caches settle there)."""
    cuda = device is not None and device.type == "cuda"
    for _ in range(warmup):
        run()
    times = []
    for _ in range(max(1, repeats)):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


@torch.no_grad()
def count_flops(model: ModelAdapter | torch.nn.Module, image_size: int, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``batch`` x C x ``image_size`` x ``image_size`` (C: the model's bands)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = LogitsOnly(model) if isinstance(model, ModelAdapter) else model
    net.eval()
    device = next(net.parameters()).device
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(batch, input_channels(net), image_size, image_size, device=device))
    return int(counter.get_total_flops())


def input_channels(net: torch.nn.Module) -> int:
    """The input bands of a :class:`LogitsOnly` (its adapter's), else 3."""
    adapter = getattr(net, "adapter", None)
    return adapter.in_channels if isinstance(adapter, ModelAdapter) else 3


@dataclass
class ModelCost:
    name: str
    arch: str
    image_size: int
    params: int
    flops: int
    onnx_bytes: int | None
    # runtime -> device -> batch size (as text, for JSON) -> median ms per batch
    latency_ms: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def macs(self) -> float:
        return self.flops / 2


def default_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def measure(model: ModelAdapter, name: str, image_size: int, batches: Sequence[int] = (1, 64),
            repeats: int = 10, warmup: int = 3, devices: Sequence[str] | None = None,
            runtimes: Sequence[str] = RUNTIMES, timing: bool = True) -> ModelCost:
    """Parameters, FLOPs (one image), float ONNX size and latencies of ``model``."""
    from .export import onnx_bytes

    model = model.cpu().eval()
    # In eval mode as a whole: the ONNX export restores the wrapper's mode afterwards, and a wrapper
    # left in training mode would put every BatchNorm back into training for the timed runs.
    net = LogitsOnly(model).eval()
    cost = ModelCost(name, model.arch, image_size, count_parameters(model), count_flops(model, image_size), None)
    onnx_model = onnx_bytes(net, image_size, channels=model.in_channels) if "onnxruntime" in runtimes else None
    cost.onnx_bytes = len(onnx_model) if onnx_model is not None else None
    if not timing:
        return cost
    devices = list(devices) if devices is not None else default_devices()
    threads = torch.get_num_threads()
    for runtime in runtimes:
        for device in devices:
            run_batch = (_torch_runner(net, device) if runtime == "pytorch"
                         else _onnx_runner(onnx_model, device, threads))
            if run_batch is None:
                continue  # e.g. onnxruntime without its CUDA provider
            times = {}
            for b in batches:
                x = np.random.default_rng(b).random((b, model.in_channels, image_size, image_size), dtype=np.float32)
                times[str(b)] = round(run_batch(x, warmup, repeats), 3)
            cost.latency_ms.setdefault(runtime, {})[device] = times
    net.cpu()
    return cost


def _torch_runner(net: torch.nn.Module, device: str) -> Callable[[np.ndarray, int, int], float] | None:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return None

    def run(x: np.ndarray, warmup: int, repeats: int) -> float:
        net.to(dev)
        t = torch.from_numpy(x).to(dev)
        with torch.inference_mode():
            return median_ms(lambda: net(t), warmup, repeats, dev)

    return run


def _onnx_runner(model: bytes, device: str, threads: int) -> Callable[[np.ndarray, int, int], float] | None:
    import onnxruntime as ort

    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return None
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # the same threads PyTorch uses: a like-for-like race
    session = ort.InferenceSession(model, options, providers=providers)

    def run(x: np.ndarray, warmup: int, repeats: int) -> float:
        return median_ms(lambda: session.run(None, {"image": x}), warmup, repeats)

    return run


def resolve_model(spec: str, classes: int = 1000) -> tuple[ModelAdapter, str, int | None]:
    """A run directory or checkpoint (trained model, its training size), or a model name of
    ``rsdistill models`` (random weights, ``classes`` outputs, no size of its own)."""
    from ..engine.checkpoint import load_model
    from ..errors import RsDistillError

    if Path(spec).is_file() and Path(spec).suffix.lower() in (".onnx", ".safetensors", ".ts"):
        raise RsDistillError(f"profile: '{spec}' is an exported file; profile measures a run directory, an "
                             "rsdistill checkpoint or a model name (profile the run it was exported from)")
    if Path(spec).exists():
        model, record = load_model(spec)
        return model, str(spec), record.get("image_size")
    if spec in MODELS:
        model = build_model(spec, classes).eval()
        return model, spec, None
    raise RsDistillError(f"profile: '{spec}' is neither a run directory, a checkpoint nor a model name "
                         "(see `rsdistill models`)")


def comparison(student: ModelCost, teacher: ModelCost | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record: both models' figures and the teacher / student ratios."""
    out: dict[str, Any] = {**(meta or {}), "student": asdict(student) | {"macs": student.macs}}
    if teacher is None:
        return out
    out["teacher"] = asdict(teacher) | {"macs": teacher.macs}
    out["ratios_teacher_over_student"] = ratios(teacher, student)
    out["ratios_student_over_teacher"] = ratios(student, teacher, digits=4)
    return out


def ratios(a: ModelCost, b: ModelCost, digits: int = 3) -> dict[str, Any]:
    """``a`` / ``b`` for each measure both have (None where one lacks it)."""
    ratio = lambda x, y: round(x / y, digits) if x and y else None  # noqa: E731
    return {
        "params": ratio(a.params, b.params),
        "flops": ratio(a.flops, b.flops),
        "onnx_bytes": ratio(a.onnx_bytes, b.onnx_bytes),
        "latency_ms": {rt: {dev: {n: ratio(ms, b.latency_ms.get(rt, {}).get(dev, {}).get(n))
                                  for n, ms in per_b.items()} for dev, per_b in per_dev.items()}
                       for rt, per_dev in a.latency_ms.items()},
    }


# What the demo and `rsdistill report` quote: batch 1 on the CPU, few repeats, so that two small
# models take seconds; `rsdistill profile` is the place for careful measurements.
QUICK = {"batches": [1], "repeats": 5, "warmup": 3, "devices": ["cpu"]}


def quick_cost(model: ModelAdapter, name: str, image_size: int) -> tuple[ModelCost, list[str]]:
    """:func:`measure` at the :data:`QUICK` settings, plus notes on what could not be measured:
    without onnx/onnxruntime (the ``export`` extra) the ONNX size and latency are left out rather
    than failing the caller."""
    kw = {k: QUICK[k] for k in ("batches", "repeats", "warmup", "devices")}
    try:
        return measure(model, name, image_size, **kw), []
    except ImportError as e:
        cost = measure(model, name, image_size, runtimes=("pytorch",), **kw)
        return cost, [(f"no ONNX file size or onnxruntime latency: {e.name or e} is not installed "
                       "(pip install 'rsdistill[export]')")]


def cpu_batch1_ms(cost: dict[str, Any], runtime: str = "pytorch") -> float | None:
    """The median CPU latency at batch 1 of a cost record (``asdict(ModelCost)``), if measured."""
    return cost.get("latency_ms", {}).get(runtime, {}).get("cpu", {}).get("1")


def cost_from_dict(d: dict[str, Any]) -> ModelCost:
    """A :class:`ModelCost` back from its JSON form (as :func:`comparison` writes it)."""
    names = {f.name for f in fields(ModelCost)}
    return ModelCost(**{k: v for k, v in d.items() if k in names})


def flops_unit(flops: float) -> tuple[str, float]:
    """("GFLOPs", 1e9) for a model of a GFLOP or more, else ("MFLOPs", 1e6): small inputs and small
    models read better in MFLOPs."""
    return ("GFLOPs", 1e9) if flops >= 1e9 else ("MFLOPs", 1e6)


def times(r: float | None) -> str | None:
    """A ratio as "0.031x" (two significant digits below 1, two decimals above)."""
    if r is None:
        return None
    return f"{r:.2f}x" if r >= 1 else f"{r:.2g}x"


def comparison_table(record: dict[str, Any], title: str = "") -> Table:
    """Measures as rows; the student, the teacher and teacher / student as columns."""
    s, t = record["student"], record.get("teacher")
    columns = ["measure", f"student ({s['arch']})"]
    if t is not None:
        columns += [f"teacher ({t['arch']})", "teacher / student"]
    table = Table(columns, title=title)

    def row(label: str, get: Callable[[dict[str, Any]], float | None]) -> None:
        sv = get(s)
        cells: list[object] = [label, _num(sv)]
        if t is not None:
            tv = get(t)
            cells += [_num(tv), f"{tv / sv:.2f}x" if tv and sv else "—"]
        table.add(*cells)

    row("parameters (M)", lambda m: m["params"] / 1e6)
    row(f"FLOPs (G, 1 image at {s['image_size']} px)", lambda m: m["flops"] / 1e9)
    row("MACs (G, = FLOPs / 2)", lambda m: m["macs"] / 1e9)
    row("file size (MB, float ONNX)", lambda m: m["onnx_bytes"] / 1e6 if m["onnx_bytes"] else None)
    for rt, per_dev in s["latency_ms"].items():
        for dev, per_b in per_dev.items():
            for b in per_b:
                row(f"latency {RUNTIME_TITLES.get(rt, rt)} {dev.upper()}, batch {b} (ms, median)",
                    lambda m, rt=rt, dev=dev, b=b: m["latency_ms"].get(rt, {}).get(dev, {}).get(b))
    return table


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def profile_models(student: str, teacher: str | None = None, image_size: int | None = None, classes: int | None = None,
                   batches: Sequence[int] = (1, 64), repeats: int = 10, warmup: int = 3,
                   devices: Sequence[str] | None = None, timing: bool = True) -> dict[str, Any]:
    """``rsdistill profile``: the student (and teacher) measured one after the other at one size."""
    import onnxruntime

    if devices and any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        from ..errors import RsDistillError

        raise RsDistillError("profile: --device cuda requested but CUDA is not available")
    # A model given by name gets the class count of the trained one beside it, else ``classes``.
    specs = [student] + ([teacher] if teacher else [])
    models = {spec: resolve_model(spec, classes) for spec in specs if Path(spec).exists()}
    trained = next(iter(models.values()), None)
    n = classes if classes is not None else trained[0].num_classes if trained else 1000
    models |= {spec: resolve_model(spec, n) for spec in specs if spec not in models}
    size = int(image_size or models[student][2] or (trained[2] if trained else None) or 224)
    kw = dict(batches=batches, repeats=repeats, warmup=warmup, devices=devices, timing=timing)
    s_cost = measure(models[student][0], models[student][1], size, **kw)
    t_cost = measure(models[teacher][0], models[teacher][1], size, **kw) if teacher else None
    meta = {"image_size": size, "batches": list(batches), "repeats": repeats, "warmup": warmup,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "latency": "median ms per batch over the repeats, after the warm-up runs"}
    return comparison(s_cost, t_cost, meta)


def write_profile(record: dict[str, Any], stem: Path, title: str = "") -> list[Path]:
    from ..io import atomic_write_json

    stem = Path(stem)
    atomic_write_json(stem.with_suffix(".json"), record)
    return [stem.with_suffix(".json"), *comparison_table(record, title).write(stem, ("md",))]

