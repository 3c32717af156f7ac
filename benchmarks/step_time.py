"""Per-step time of the course's gradient methods, side by side with torchjd and LibMTL.

    python benchmarks/step_time.py                  # T = 2 and 4, conv and MLP trunks (a few minutes)
    python benchmarks/step_time.py --rounds 5       # quicker, noisier
    python benchmarks/step_time.py --profile        # also: where the time of a course step goes
    python benchmarks/step_time.py --only-course --trunks mlp --tasks 4
    python benchmarks/step_time.py --rounds 0 --profile --allocator default --trunks conv   # page faults
    python benchmarks/step_time.py --device cuda    # on a GPU (wall clock, synchronised)
    python benchmarks/step_time.py --only-course --floors --trunks mlp --tasks 4   # what bounds MGDA-UB

Every arm runs one whole optimisation step on the same model (its own copy, same initial
weights), the same batch of 256 and the optimizer ``fit`` builds (:func:`mtl_helpers.train.make_optimizer`:
Adam, fused): forward, the per-task gradients, the method's update direction, the optimizer
step. The course's arms call :func:`mtl_helpers.train.train_step`, the
very function ``fit`` loops over, with the names resolved by ``fit``'s own ``resolve_methods``.
torchjd's arms run ``mtl_backward`` (a vmapped Jacobian of the features) and ``jac_to_grad``
with its aggregator. LibMTL's arms call its weighting classes' ``backward`` (T
``loss.backward()`` calls), without its trainer, on separate per-task losses (its trainer
puts them in one tensor, which makes each backward pass run every head: slower).

The arms are timed in turn inside each round (:func:`mtl_helpers.utils.time_interleaved`),
and the median over the rounds is reported. The benchmark runs torch on one thread
(``torch.set_num_threads(1)``), and by default reports the CPU time of that thread
(``--clock cpu``): on a machine shared with other work it is far steadier than the wall
clock (``--clock wall``), which counts the time the thread waited for a core. Absolute times
depend on the machine; read the ratios. With ``--device cuda`` every arm's model and batch live
on the GPU and the clock is the wall clock, read after the GPU has finished each step.

By default (``--allocator keep``, glibc only) the benchmark first asks malloc to keep the memory
it frees: otherwise glibc hands the many MiB of a conv step's activation gradients back to the
OS after each step and page-faults them in again in the next one, which costs 25–30 % of a conv
step, and in an interleaved run those faults land on whichever arm happens to run next.
``--allocator default`` measures glibc as configured.

Not a test: pytest does not collect this file (``benchmarks/``, no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import random
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mtl_helpers.train as train  # noqa: E402
from mtl_helpers.conflict import combine, min_norm_weights  # noqa: E402
from mtl_helpers.data import Split  # noqa: E402
from mtl_helpers.models import HardSharing  # noqa: E402
from mtl_helpers.models.trunks import ConvTrunk, make_head, mlp  # noqa: E402
from mtl_helpers.tasks import Task  # noqa: E402
from mtl_helpers.train import make_optimizer, resolve_methods, train_step  # noqa: E402
from mtl_helpers.utils import time_interleaved  # noqa: E402

# The course's arms: label → fit options (exactly what a notebook passes to ``fit``).
COURSE = {
    "equal weights": {},
    "PCGrad": {"gradient_method": "pcgrad"},
    "MGDA": {"gradient_method": "mgda"},
    "MGDA-UB": {"gradient_method": "mgda", "gradients_wrt": "representation"},
    "CAGrad": {"gradient_method": "cagrad"},
    "Nash-MTL": {"gradient_method": "nash"},
}
BATCH = 256
Step = Callable[[], object]
Builder = Callable[[HardSharing, Split, list[Task]], Step]


# ------------------------------------------------------------------ the problem
def make_problem(trunk: str, n_tasks: int, seed: int = 0,
                 device: str = "cpu") -> tuple[HardSharing, Split, list[Task]]:
    """A hard-sharing network, a batch of 256 and T 10-class tasks; heads 64|128 → 32 → 10."""
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", "classification", 10) for i in range(n_tasks)]
    if trunk == "conv":  # the course's ConvTrunk on MultiMNIST's full 28 × 28 images
        body, width, x = ConvTrunk(image_size=28, channels=(8, 16), out_dim=64), 64, torch.rand(BATCH, 1, 28, 28)
        # LibMTL reads each gradient with .view(-1), which the gradient of a channels-last conv
        # weight (the course's default layout) refuses: every arm gets the contiguous layout here,
        # so the table compares the methods, not the layouts. (Channels-last makes a conv step
        # ~30 % faster for every method; the notebooks use it.)
        body.features.to(memory_format=torch.contiguous_format)
    elif trunk == "mlp":  # tabular features, Adult-like
        body, width, x = mlp(100, [256, 128]), 128, torch.randn(BATCH, 100)
    else:
        raise ValueError(f"trunk must be 'conv' or 'mlp', got {trunk!r}.")
    model = HardSharing(body, {t.name: make_head(width, t, (32,)) for t in tasks}).to(device)
    batch = Split(x.to(device), {t.name: torch.randint(0, 10, (BATCH,)).to(device) for t in tasks})
    return model, batch, tasks


def per_task_losses(outputs: dict[str, Tensor], batch: Split, tasks: list[Task]) -> list[Tensor]:
    return [t.loss(outputs[t.name], batch.y[t.name]) for t in tasks]


def mgda_float32_gram(grads: Tensor) -> Tensor:
    """MGDA's direction with M = G Gᵀ summed in float32 (then float64 for the solver), as torchjd
    and LibMTL compute it: what the course's float64 Gram matrix costs (``--floors``)."""
    m = (grads @ grads.T).double()
    if not torch.isfinite(m.trace()):
        raise ValueError("G has a NaN or inf entry.")
    return combine(min_norm_weights(m), grads, check=False)


# ``--floors``: two arms that are not course methods, to show what bounds MGDA-UB's step.
FLOORS = {
    "MGDA-UB, free direction (d = g_1)": {"gradients_wrt": "representation", "gradient_method": lambda g: g[0]},
    "MGDA-UB, float32 Gram": {"gradients_wrt": "representation", "gradient_method": mgda_float32_gram},
}


def course_step(model: nn.Module, batch: Split, tasks: list[Task], options: dict,
                optimizer: torch.optim.Optimizer | None = None) -> Step:
    """One real ``train_step``, the function ``fit`` calls, with fit's name resolution and Adam."""
    weighting, method = resolve_methods(model, tasks, None, options.get("gradient_method"))
    optimizer = optimizer or make_optimizer(model.parameters())
    wrt = options.get("gradients_wrt", "parameters")
    return lambda: train_step(model, batch, tasks, optimizer, weighting=weighting, gradient_method=method,
                              gradients_wrt=wrt)


# ------------------------------------------------------------------ torchjd
def torchjd_arms(n_tasks: int) -> dict[str, Builder]:
    """torchjd's ``mtl_backward`` + ``jac_to_grad`` with its aggregators, by the course's labels."""
    import torchjd.aggregation as agg
    from torchjd.autojac import jac_to_grad, mtl_backward

    def build(make_aggregator: Callable[[], object]) -> Builder:
        def make(model: HardSharing, batch: Split, tasks: list[Task]) -> Step:
            aggregator, shared = make_aggregator(), list(model.shared_parameters())
            optimizer = make_optimizer(model.parameters())

            def step() -> None:
                optimizer.zero_grad(set_to_none=True)
                z = model.encode(batch.x)
                mtl_backward(per_task_losses(model.decode(z), batch, tasks), features=z)
                jac_to_grad(shared, aggregator)
                optimizer.step()
            return step
        return make
    return {"equal weights": build(agg.Mean), "PCGrad": build(agg.PCGrad), "MGDA": build(agg.MGDA),
            "CAGrad": build(lambda: agg.CAGrad(c=0.5)), "Nash-MTL": build(lambda: agg.NashMTL(n_tasks=n_tasks))}


# ------------------------------------------------------------------ LibMTL
def libmtl_arms(n_tasks: int) -> dict[str, Builder]:
    """LibMTL's weighting classes, driven the way its Trainer drives them (without the Trainer)."""
    if "LibMTL" not in sys.modules:  # its __init__ imports the trainer and models (torchvision):
        package = types.ModuleType("LibMTL")  # an empty package with its path loads the weightings only
        package.__path__ = list(importlib.util.find_spec("LibMTL").submodule_search_locations)
        sys.modules["LibMTL"] = package
    from LibMTL.weighting.CAGrad import CAGrad
    from LibMTL.weighting.EW import EW
    from LibMTL.weighting.MGDA import MGDA
    from LibMTL.weighting.PCGrad import PCGrad

    class FixedCAGrad(CAGrad):
        """LibMTL 1.1.5's CAGrad hard-codes 3 tasks (``x.reshape(1, 3)``); its GitHub head uses
        ``self.task_num``. The same code with that one fix."""

        def backward(self, losses, **kwargs):
            from scipy.optimize import minimize
            calpha, rescale = kwargs["calpha"], kwargs["rescale"]
            self._compute_grad_dim()
            grads = self._compute_grad(losses, mode="backward")
            GG = torch.matmul(grads, grads.t()).cpu()
            g0_norm = (GG.mean() + 1e-8).sqrt()
            x_start, T = np.ones(self.task_num) / self.task_num, self.task_num
            A, b, c = GG.numpy(), x_start.copy(), (calpha * g0_norm + 1e-8).item()

            def objfn(x):
                return (x.reshape(1, T).dot(A).dot(b.reshape(T, 1))
                        + c * np.sqrt(x.reshape(1, T).dot(A).dot(x.reshape(T, 1)) + 1e-8)).sum()
            w_cpu = minimize(objfn, x_start, bounds=tuple((0, 1) for _ in x_start),
                             constraints=({"type": "eq", "fun": lambda x: 1 - sum(x)})).x
            gw = (grads * torch.Tensor(w_cpu).to(self.device).view(-1, 1)).sum(0)
            g = grads.mean(0) + c / (gw.norm() + 1e-8) * gw
            self._reset_grad({0: g, 1: g / (1 + calpha ** 2), 2: g / (1 + calpha)}[rescale])
            return w_cpu

    def build(weighting: type, rep_grad: bool, **kwargs) -> Builder:
        class Runner(weighting):
            """What LibMTL's model (architecture + weighting) provides to ``backward``."""

            def __init__(self, model: HardSharing, tasks: list[Task]) -> None:
                super().__init__()
                self.net, self.task_num, self.task_name = model, len(tasks), [t.name for t in tasks]
                self.device, self.rep_grad = next(model.parameters()).device, rep_grad

            def get_share_params(self):
                return self.net.trunk.parameters()

            def zero_grad_share_params(self):
                self.net.trunk.zero_grad(set_to_none=False)  # LibMTL was written for torch 1.x's zero_grad

            def outputs(self, x: Tensor) -> dict[str, Tensor]:
                z = self.net.encode(x)
                if not self.rep_grad:
                    return self.net.decode(z)
                self.rep, self.rep_tasks = z, {}  # LibMTL's _prepare_rep: one detached copy of z per task
                for name in self.task_name:
                    self.rep_tasks[name] = z.detach().clone().requires_grad_(True)
                return {name: head(self.rep_tasks[name]) for name, head in self.net.heads.items()}

        def make(model: HardSharing, batch: Split, tasks: list[Task]) -> Step:
            runner, optimizer = Runner(model, tasks), make_optimizer(model.parameters())

            def step() -> None:
                optimizer.zero_grad()
                losses = per_task_losses(runner.outputs(batch.x), batch, tasks)
                runner.backward(torch.stack(losses) if weighting is EW else losses, **kwargs)
                optimizer.step()
            return step
        return make

    return {"equal weights": build(EW, False), "PCGrad": build(PCGrad, False),
            "MGDA": build(MGDA, False, mgda_gn="none"), "MGDA-UB": build(MGDA, True, mgda_gn="none"),
            "CAGrad": build(FixedCAGrad, False, calpha=0.5, rescale=2)}


def libraries(only_course: bool) -> dict[str, Callable[[int], dict[str, Builder]]]:
    """The libraries installed, each as T → its arms; a line for each one missing."""
    if only_course:
        return {}
    found = {}
    if importlib.util.find_spec("torchjd") is not None:
        found["torchjd"] = torchjd_arms
    else:
        print("torchjd is not installed: `pip install torchjd` to compare with it.")
    if importlib.util.find_spec("LibMTL") is not None:
        found["LibMTL"] = libmtl_arms
    else:
        print("LibMTL is not installed: `pip install --no-deps LibMTL` to compare with it "
              "(its weighting modules need only torch, numpy and scipy).")
    return found


# ------------------------------------------------------------------ the allocator
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    By default glibc serves large blocks (from 128 KiB, a threshold it raises as it goes) with
    fresh ``mmap`` pages and trims the heap as soon as its free top exceeds a few MiB. A
    conv step allocates and frees many MiB of activation gradients per backward pass, so every
    step page-faults thousands of zero-filled pages back in: kernel time billed to whichever arm
    runs next. With the thresholds raised (what ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=
    33554432:glibc.malloc.trim_threshold=1073741824`` does at start-up) no arm pays for another's
    memory. Returns False where there is no glibc (macOS, Windows).
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


def page_faults() -> tuple[int, float]:
    """This thread's minor page faults and kernel CPU seconds so far (Linux; zeros elsewhere)."""
    try:
        import resource
        usage = resource.getrusage(resource.RUSAGE_THREAD)
    except (ImportError, AttributeError, OSError):
        return 0, 0.0
    return usage.ru_minflt, usage.ru_stime


# ------------------------------------------------------------------ timing
def measure(trunk: str, n_tasks: int, rounds: int, warmup: int, libs: dict,
            clock: str = "cpu", device: str = "cpu", course: dict = COURSE) -> dict[tuple[str, str], float]:
    """Median ms per step of every (library, method) arm, all timed in turn in each round.

    ``clock="wall"``: :func:`~mtl_helpers.utils.time_interleaved`'s wall clock. ``"cpu"``: the
    CPU time of this thread over the same calls (``time.thread_time``; with one torch thread
    the whole step, backward included, runs on it). On a GPU only the wall clock means anything.
    """
    model, batch, tasks = make_problem(trunk, n_tasks, device=device)
    steps = {("course", name): course_step(copy.deepcopy(model), batch, tasks, options)
             for name, options in course.items()}
    for lib, arms in libs.items():
        for name, build in arms(n_tasks).items():
            steps[(lib, name)] = build(copy.deepcopy(model), batch, tasks)
    cpu: dict[str, list[float]] = {}

    def on_cpu(name: str, fn: Step) -> Step:
        def run() -> None:
            start = time.thread_time()
            fn()
            cpu.setdefault(name, []).append(time.thread_time() - start)
        return run

    random.seed(0)  # LibMTL's PCGrad shuffles with Python's random
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cvxpy's "not DPP" note from torchjd's Nash-MTL
        wall = time_interleaved({f"{lib}/{name}": on_cpu(f"{lib}/{name}", fn) for (lib, name), fn in steps.items()},
                                repeats=rounds, warmup=warmup, device=device)
    seconds = wall if clock == "wall" else {name: statistics.median(ts[warmup:]) for name, ts in cpu.items()}
    return {key: seconds[f"{key[0]}/{key[1]}"] * 1e3 for key in steps}


def table(trunk: str, n_tasks: int, ms: dict[tuple[str, str], float], course: dict = COURSE) -> str:
    """A Markdown table: ms per step, × the course's equal-weights step, course ÷ LibMTL and ÷ torchjd."""
    base = ms[("course", "equal weights")]
    lines = [f"\n{trunk} trunk, T = {n_tasks}\n",
             "| method | course ms | × equal weights | LibMTL ms | course ÷ LibMTL | torchjd ms | course ÷ torchjd |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in course:
        ours, lib, jd = ms[("course", name)], ms.get(("LibMTL", name)), ms.get(("torchjd", name))
        cells = [name, f"{ours:.2f}", f"{ours / base:.2f}", f"{lib:.2f}" if lib else "—",
                 f"**{ours / lib:.2f}**" if lib else "—", f"{jd:.2f}" if jd else "—", f"{ours / jd:.2f}" if jd else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ profile
PHASES = ("forward", "per-task gradients (T backward passes)", "the method's direction d(G)",
          "backward (Tensor.backward)", "Adam step")


def profile(trunk: str, n_tasks: int, names: list[str], steps: int = 40, rows: int = 8) -> None:
    """Where the time of a course step goes.

    First the phases of ``train_step``, each timed with the thread's CPU clock over ``steps``
    steps (the functions it calls are wrapped for this: the forward, ``per_task_gradients``,
    the direction, ``Tensor.backward``, ``Adam.step``; "other" is the rest: losses, checks,
    writing ``.grad``). Then ``torch.profiler``'s ops with the most self CPU time, which is
    wall-clock time per op: on a busy machine read its shares, not its milliseconds.
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    spent: dict[str, float] = {}
    inside: set[str] = set()

    def timed(phase: str, fn: Callable) -> Callable:
        def run(*args, **kwargs):
            if phase in inside:  # forward → encode, decode: count the outermost call only
                return fn(*args, **kwargs)
            inside.add(phase)
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] = spent.get(phase, 0.0) + time.thread_time() - start
                inside.discard(phase)
        return run

    patched = [(train, "per_task_gradients"), (torch.Tensor, "backward")]
    originals = [getattr(owner, attr) for owner, attr in patched]
    train.per_task_gradients = timed(PHASES[1], originals[0])  # what _gradient_step calls
    torch.Tensor.backward = timed(PHASES[3], originals[1])  # equal weights' backward; MGDA-UB's trunk pass
    try:
        for name in names:
            model, batch, tasks = make_problem(trunk, n_tasks)
            for attr in ("forward", "encode", "decode"):  # MGDA-UB calls encode/decode instead of forward
                setattr(model, attr, timed(PHASES[0], getattr(model, attr)))
            options = dict(COURSE[name])
            if "gradient_method" in options:
                method = resolve_methods(model, tasks, None, options["gradient_method"])[1]
                options["gradient_method"] = timed(PHASES[2], method)
            optimizer = make_optimizer(model.parameters())
            optimizer.step = timed(PHASES[4], optimizer.step)
            step = course_step(model, batch, tasks, options, optimizer)
            for _ in range(3):
                step()
            spent.clear()
            faults, kernel = page_faults()
            start = time.thread_time()
            for _ in range(steps):
                step()
            total = (time.thread_time() - start) / steps * 1e3
            faults, kernel = [(after - before) / steps for after, before in zip(page_faults(), (faults, kernel))]
            print(f"\n{name}, {trunk} trunk, T = {n_tasks}: {total:.2f} ms per step (thread CPU time, "
                  f"mean of {steps})")
            shares = {phase: spent[phase] / steps * 1e3 for phase in PHASES if phase in spent}
            shares["other"] = total - sum(shares.values())
            for phase, ms in shares.items():
                print(f"  {phase:42s} {ms:6.2f} ms  {ms / total:4.0%}")
            print(f"  of all which: kernel time {kernel * 1e3:.2f} ms ({kernel * 1e3 / total:.0%}), "
                  f"{faults:.0f} page faults per step")
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(steps):
                    step()
            events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
            all_ops = sum(e.self_cpu_time_total for e in events)
            print("  torch.profiler, top ops by self CPU time (share, calls per step):")
            print("    " + ", ".join(f"{e.key} {e.self_cpu_time_total / all_ops:.0%} ({e.count // steps})"
                                     for e in events[:rows]))
    finally:
        for (owner, attr), original in zip(patched, originals):
            setattr(owner, attr, original)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (the median is reported); 0: no table")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--trunks", nargs="+", default=["conv", "mlp"], choices=["conv", "mlp"])
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"], help="thread CPU time or wall clock")
    parser.add_argument("--allocator", default="keep", choices=["keep", "default"],
                        help="keep: glibc keeps freed memory (no page faults billed to the next arm); "
                             "default: glibc as configured")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda implies --clock wall)")
    parser.add_argument("--only-course", action="store_true", help="skip torchjd and LibMTL")
    parser.add_argument("--profile", action="store_true", help="also profile the course's steps")
    parser.add_argument("--floors", action="store_true",
                        help="also MGDA-UB with a free direction (its two backward passes alone) and with a "
                             "float32 Gram matrix")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda":
        if args.profile:
            parser.error("--profile reads the CPU thread's clock: profile on the CPU.")
        args.clock = "wall"
    torch.set_num_threads(1)
    allocator = "glibc's default malloc"
    if args.allocator == "keep":
        allocator = "malloc keeps freed memory" if keep_freed_memory() else "no glibc: the default malloc"
    where = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "1 thread"
    print(f"torch {torch.__version__} on {where}; batch {BATCH}; {allocator}" + (
        f"; ms per step: median over {args.rounds} interleaved rounds ({args.warmup} warm-up), {args.clock} clock"
        if args.rounds > 0 else ""))
    libs = libraries(args.only_course) if args.rounds > 0 else {}
    course = {**COURSE, **FLOORS} if args.floors else COURSE
    for trunk in args.trunks if args.rounds > 0 else ():
        for n_tasks in args.tasks:
            ms = measure(trunk, n_tasks, args.rounds, args.warmup, libs, args.clock, args.device, course)
            print(table(trunk, n_tasks, ms, course), flush=True)
    if args.profile:
        for trunk in args.trunks:
            profile(trunk, max(args.tasks), list(COURSE))


if __name__ == "__main__":
    main()
