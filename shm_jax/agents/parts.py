"""What an algorithm builds its networks from (made once by ``shm_jax.build`` from the agent section)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from shm_jax.agents.distributions import ActionSpec
from shm_jax.agents.trunk import RecurrentTrunk


@dataclasses.dataclass(frozen=True)
class AgentParts:
    """The action space, a maker of recurrent trunks, and the heads' width.

    make_trunk(memory=None, memory_kwargs=None, field="memory") -> a new :class:`RecurrentTrunk` around a new
    memory core: the agent section's ``--memory`` by default, or the named core with ``memory_kwargs`` (None: the
    section's ``--memory-kwargs`` when the name is ``--memory``, else the core's defaults), for an off-policy
    learner's separate actor and critic memories; a bad name or kwargs is a ConfigError naming ``field``.
    """

    action_spec: ActionSpec
    make_trunk: Callable[..., RecurrentTrunk]
    head_hidden_size: int
