"""Test-session settings, loaded by every pytest worker before any test or notebook runs."""

import os

# pytest runs two workers on two cores, each starting notebook kernels. PyTorch's default of
# one thread per core would put 4+ spinning threads on 2 cores, which slows small models by
# 5-20x; one thread per process is fastest here. Kernels inherit this environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# For the same reason the protocol trains one run at a time here (mtl_helpers.workers): the two
# pytest workers already fill both cores. tests/test_workers.py runs them side by side.
os.environ.setdefault("MTL_WORKERS", "1")
# glibc returns freed memory to the OS and page-faults it back in at every training step (a
# quarter of a conv step here, benchmarks/step_time.py): keep it. Kernels inherit this too.
os.environ.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
