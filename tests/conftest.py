"""The suite runs on the CPU backend (its sizes and tolerances are set for it).

With the ``aot`` extra installed, jax would otherwise try to start the CUDA and TPU plugins it brings (for
compile-only checks) and print their failures on every machine without those devices; the TPU and GPU compiles of
tests/tools do not need the plugins as backends. Set JAX_PLATFORMS yourself to override.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
