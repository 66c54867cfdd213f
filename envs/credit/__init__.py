"""Long-term credit-assignment tasks of the SHM paper: Visual Match and Key-to-Door (TVT pycolab ports).

Importing this package registers ``VisualMatch250``, ``VisualMatch500``, ``VisualMatch-Short``,
``KeyToDoor250``, ``KeyToDoor500``, ``KeyToDoor-Short``.
Shared engine: ``envs.credit.board`` (cells, moves, crop, apples) and ``envs.credit.story`` (chapters).
"""

from shm_jax.envs.credit import key_to_door, visual_match  # noqa: F401  (registers the ids)
from shm_jax.envs.credit.key_to_door import KeyToDoor  # noqa: F401
from shm_jax.envs.credit.story import ChapterEnv, CreditParams, CreditState  # noqa: F401
from shm_jax.envs.credit.visual_match import VisualMatch, VisualMatchParams  # noqa: F401
