"""Test-session settings, loaded by every pytest worker before any test or notebook runs."""

import os

# pytest runs two workers on two cores, each starting notebook kernels. PyTorch's default of
# one thread per core would put 4+ spinning threads on 2 cores, which slows small models by
# 5-20x; one thread per process is fastest here. Kernels inherit this environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
