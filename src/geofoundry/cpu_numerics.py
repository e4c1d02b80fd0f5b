"""The same CPU kernels on every x86-64 machine with AVX2, so that training gives the same weights on another CPU.

PyTorch picks its CPU kernels by the instruction set of the machine it runs on: oneDNN (convolutions), ATen's
vectorised kernels and MKL (matrix products) each have AVX2, AVX-512 and AMX variants that add in different orders,
so the same seed gives other weights on another CPU type (the first epoch's loss already differs). Capping all three
at AVX2 makes every x86-64 CPU with AVX2 run the AVX2 variants. The caps are environment variables read once, when a
library first runs a kernel: the train stage sets them before it imports torch. A value the user set is kept.
"""

from __future__ import annotations

import os

CAPS = {
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN (torch.backends.mkldnn): convolutions, pooling, batch norm
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's own vectorised kernels: element-wise ops, reductions
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: matrix products (attention, linear layers)
}


def pin_cpu_kernels() -> dict[str, str]:
    """Set the AVX2 caps for this process where the environment does not set them; return the values in force."""
    for key, value in CAPS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in CAPS}


def cpu_kernels() -> dict[str, str | int]:
    """What this process computes with on the CPU (recorded in checkpoints): torch, its ATen kernels, the caps in
    force and the thread count; runs with equal values give equal weights."""
    import torch

    return {"torch": str(torch.__version__), "aten": torch.backends.cpu.get_cpu_capability(),
            **{key.lower(): os.environ.get(key, "") for key in CAPS}, "threads": torch.get_num_threads()}
