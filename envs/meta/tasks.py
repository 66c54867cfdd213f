"""Task tables and train/test splits of the meta-RL navigation tasks (Wind, Point Robot).

The official code seeds numpy's global generator with 1337 inside each environment's constructor, so the
200 tasks and the train/test permutation are the same in every run, whatever the run seed. We replay the
same legacy-numpy draws (``np.random.RandomState(1337)``) in the same order, so the tables equal the
original's (first tasks pinned by the tests) and are identical for every run seed.

- Wind: 200 winds, per task x then y, each U(-0.1, 0.1).
- Point Robot: 400 discarded U(-10, 10) draws (the parent class's goals), 2 start-state draws, 200 angles
  U(0, pi) -> goals (cos, sin) on the upper unit semicircle, an in-place shuffle of the goal rows, 2 more
  start-state draws.
- Split: then one permutation P of 0..199 from the same generator; train = P[:num_train],
  test = P[-num_test:] (disjoint and covering all 200 when num_train + num_test = 200).
"""

from __future__ import annotations

import functools

import numpy as np

NUM_TASKS = 200
TASK_SEED = 1337


def _permutation_after(rng: np.random.RandomState) -> np.ndarray:
    """The learner's task permutation, drawn right after the environment constructor. int64[200]."""
    return rng.permutation(NUM_TASKS)


@functools.cache
def wind_tasks() -> tuple[np.ndarray, np.ndarray]:
    """(winds float64[200, 2], permutation int64[200]) of the Wind environment."""
    rng = np.random.RandomState(TASK_SEED)
    winds = np.array([[rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)] for _ in range(NUM_TASKS)])
    return winds, _permutation_after(rng)


@functools.cache
def point_robot_tasks() -> tuple[np.ndarray, np.ndarray]:
    """(goals float64[200, 2] on the upper unit semicircle, permutation int64[200]) of Point Robot."""
    rng = np.random.RandomState(TASK_SEED)
    for _ in range(NUM_TASKS):  # the parent class's dense-task goals, drawn then overwritten
        rng.uniform(-10.0, 10.0), rng.uniform(-10.0, 10.0)
    rng.uniform(-1.5, 1.5), rng.uniform(-0.5, 1.5)  # start state drawn by the parent's reset_task(0)
    angles = rng.uniform(0.0, np.pi, size=NUM_TASKS)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rng.shuffle(goals)
    rng.uniform(-1.5, 1.5), rng.uniform(-0.5, 1.5)  # start state drawn by reset_task(0)
    return goals, _permutation_after(rng)


def split(permutation: np.ndarray, num_train: int, num_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(train ids int32[num_train], test ids int32[num_test]): first num_train and last num_test of P."""
    n = len(permutation)
    if not (isinstance(num_train, int) and 1 <= num_train <= n):
        raise ValueError(f"num_train must be an integer in [1, {n}], got {num_train!r}")
    if not (isinstance(num_test, int) and 1 <= num_test <= n - num_train):
        raise ValueError(f"num_test must be an integer in [1, {n - num_train}] (disjoint splits), got {num_test!r}")
    perm = np.asarray(permutation, dtype=np.int32)
    return perm[:num_train].copy(), perm[n - num_test :].copy()
