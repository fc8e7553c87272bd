"""Load the CUDA provider's libraries before a CUDA session opens, and say which one is missing if not.

onnxruntime-gpu's [cuda,cudnn] extras bring the CUDA runtime, cuBLAS, cuFFT, cuRAND and cuDNN as wheels;
`onnxruntime.preload_dlls` loads them into the process so the provider library finds them. Only the driver
(libcuda.so.1) must come from the node. When the provider cannot load, ONNX Runtime would fall back to the
CPU with a log line; loading it ourselves first turns that into the loader's own words, which name the
library that is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
from pathlib import Path
from typing import Final

import onnxruntime as ort

log = logging.getLogger(__name__)

PROVIDER_LIBRARY: Final = "libonnxruntime_providers_cuda.so"


def cuda_provider_problem() -> str | None:
    """None when the CUDA provider library loads; otherwise why not, in the dynamic loader's words."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        said = io.StringIO()
        with contextlib.redirect_stdout(said):  # preload_dlls prints what it could not load
            preload(cuda=True, cudnn=True)
        for line in filter(None, (line.strip() for line in said.getvalue().splitlines())):
            log.warning("preloading CUDA libraries: %s", line)
    provider = Path(ort.__file__).parent / "capi" / PROVIDER_LIBRARY
    if not provider.is_file():
        return f"this onnxruntime build has no {PROVIDER_LIBRARY}"
    try:
        ctypes.CDLL(str(provider))
    except OSError as exc:
        return str(exc)
    return None
