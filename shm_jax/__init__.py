"""shm-jax: Stable Hadamard Memory (Le et al., ICLR 2025) in JAX/Flax."""

__version__ = "0.1.0"
