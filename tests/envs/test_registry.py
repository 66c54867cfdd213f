"""The registry: popjym ids and popgym class names, aliases, previous-action defaults, difficulty sizes, errors."""

from __future__ import annotations

import pytest

from shm_jax import envs
from shm_jax.envs import registry

LEVELS = ("Easy", "Medium", "Hard")
# popjym's ids (its registry), and the original popgym class names where they differ.
POPJYM_TASKS = (
    "Autoencode", "Battleship", "StatelessCartPole", "NoisyStatelessCartPole", "Concentration", "CountRecall",
    "HigherLower", "Minesweeper", "MultiArmedBandit", "StatelessPendulum", "NoisyStatelessPendulum", "RepeatFirst",
    "RepeatPrevious",
)  # fmt: skip
POPGYM_CLASS_NAMES = {
    "Minesweeper": "MineSweeper",
    "MultiArmedBandit": "MultiarmedBandit",
    "StatelessCartPole": "PositionOnlyCartPole",
    "NoisyStatelessCartPole": "NoisyPositionOnlyCartPole",
    "StatelessPendulum": "PositionOnlyPendulum",
    "NoisyStatelessPendulum": "NoisyPositionOnlyPendulum",
}
# The original's obs_requires_prev_action.
NEEDS_PREV_ACTION = {"Battleship", "Concentration", "Minesweeper", "MultiArmedBandit"}


def known(name):
    try:
        envs.resolve(name)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("task", POPJYM_TASKS)
def test_popjym_ids_and_popgym_class_names_resolve_to_one_spec(task):
    for level in LEVELS:
        spec = envs.resolve(f"{task}{level}")
        assert envs.resolve(f"{POPGYM_CLASS_NAMES.get(task, task)}{level}") is spec
        assert spec.family == "popgym"
        assert spec.needs_prev_action == (task in NEEDS_PREV_ACTION), (task, spec.needs_prev_action)
        assert spec.env_id in envs.list_ids("popgym")


def test_aliases_are_listed_only_on_request_and_resolve_to_canonical_ids():
    canonical = set(envs.list_ids())
    everything = set(envs.list_ids(include_aliases=True))
    assert canonical < everything
    for name in everything - canonical:
        assert envs.resolve(name).env_id in canonical
    assert "MultiArmedBanditEasy" in canonical and "MultiarmedBanditEasy" in everything - canonical


def test_difficulty_sizes_follow_the_spec():
    sizes = {
        "Autoencode": lambda e: e.num_cards, "RepeatPrevious": lambda e: (e.num_cards, e.k),
        "RepeatFirst": lambda e: e.num_cards, "CountRecall": lambda e: (e.num_cards, e.num_types, e.num_actions),
        "HigherLower": lambda e: e.num_cards, "Concentration": lambda e: (e.num_cards, e.num_values, e.episode_length),
        "MultiArmedBandit": lambda e: (e.num_bandits, e.episode_length),
    }  # fmt: skip
    expected = {  # the original popgym's sizes
        "Autoencode": (52, 104, 156),
        "RepeatPrevious": ((52, 4), (104, 32), (156, 64)),
        "RepeatFirst": (52, 416, 832),
        "CountRecall": ((52, 2, 27), (104, 4, 27), (208, 13, 17)),
        "HigherLower": (52, 104, 156),
        "Concentration": ((52, 2, 104), (104, 2, 208), (52, 13, 104)),
        "MultiArmedBandit": ((10, 200), (20, 400), (30, 600)),
    }
    for task, read in sizes.items():
        for level, want in zip(LEVELS, expected[task]):
            env, _ = envs.make(f"{task}{level}")
            assert read(env.unwrapped) == want, (task, level)


def test_unknown_id_lists_closest_valid_ids():
    with pytest.raises(ValueError, match="RepeatPreviousEasy") as err:
        envs.resolve("RepeatPreviusEasy")
    assert "\n" not in str(err.value)


def test_duplicate_registration_is_refused():
    spec = envs.resolve("AutoencodeEasy")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("AutoencodeEasy", spec.factory)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("SomethingNew", spec.factory, aliases=("MultiarmedBanditEasy",))
    assert not known("SomethingNew")
