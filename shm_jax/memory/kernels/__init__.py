"""Pallas kernels for the SHM recurrence, one module per compiler (``pallas_shm`` picks one per platform).

- ``triton_shm``: the GPU structure (Triton); also what CPU runs in Pallas' interpret mode.
- ``mosaic_shm``: the TPU structure (Mosaic), time blocks on the grid and only aligned dynamic memory access.
- ``common``: the one forward step both share.

Both take the same kernel layouts (row-side vectors [B, H, T'], column-side [B, T', H], starts [B, 1, T']) and
return the same arrays, so ``pallas_shm``'s custom gradient is written once.
"""
