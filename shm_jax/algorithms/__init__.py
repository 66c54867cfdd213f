"""Learners behind one seam (``base``): each registers its ``--algo`` name, config section, typed
hyperparameters and factory. The registry lines for the built-in learners are below."""

from shm_jax.algorithms import base, ppo, pqn, sac

base.register(ppo.SPEC)
base.register(pqn.SPEC)
base.register(sac.SACD_SPEC)
base.register(sac.SAC_SPEC)
