"""The whole-episode replay buffer: episodes come back intact, the ring overwrites the oldest, sampling is uniform
over the filled slots, dtypes and masks survive, and vmap over runs equals separate runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms import replay

T = 4
OBS = jax.ShapeDtypeStruct((2,), jnp.float32)
ACTION = jax.ShapeDtypeStruct((), jnp.int32)


def _episodes(ids, episode_length=T) -> replay.Episodes:
    """Batch-major episodes whose every field encodes the id, so a mix-up between episodes or fields shows.

    Episode ``i`` lasts ``1 + i % T`` steps (mask, done at its last step for even ids, truncated for odd ones) and is
    zero-padded after; obs[t, k] = 100 (i + 1) + 10 t + k, action[t] = 100 (i + 1) + t, reward[t] = i + 1 + t / 8.
    """
    obs, action, reward, done, mask = [], [], [], [], []
    for i in ids:
        length = 1 + i % episode_length
        t = np.arange(episode_length)
        steps = t < length
        rows = np.arange(episode_length + 1)[:, None]
        obs.append(np.where(rows <= length, 100 * (i + 1) + 10 * rows + np.arange(2), 0))
        action.append(np.where(steps, 100 * (i + 1) + t, 0))
        reward.append(np.where(steps, i + 1 + t / 8, 0))
        done.append((t == length - 1) & (i % 2 == 0))
        mask.append(steps)
    return replay.Episodes(
        obs=jnp.asarray(np.stack(obs), jnp.float32),
        action=jnp.asarray(np.stack(action), jnp.int32),
        reward=jnp.asarray(np.stack(reward), jnp.float32),
        done=jnp.asarray(np.stack(done)),
        mask=jnp.asarray(np.stack(mask)),
    )


def _episode(episodes: replay.Episodes, index: int, axis: int = 0) -> replay.Episodes:
    return jax.tree.map(lambda x: np.asarray(jnp.take(x, index, axis=axis)), episodes)


def _assert_equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _ids(storage_or_sample: replay.Episodes, axis: int) -> np.ndarray:
    """Episode ids from action[0] (= 100 (id + 1)); -1 for an all-zero (unfilled) slot."""
    first = np.asarray(jnp.take(storage_or_sample.action, 0, axis=axis))
    return first // 100 - 1


def _filled(ids, capacity=8) -> replay.EpisodeBuffer:
    return replay.add(replay.empty(capacity, T, OBS, ACTION), _episodes(ids))


def test_sampled_episodes_are_the_added_ones_intact_and_time_major():
    ids = [0, 1, 2, 3, 5, 6]
    added = _episodes(ids)
    batch = replay.sample(_filled(ids), jax.random.PRNGKey(0), 64)
    assert batch.obs.shape == (T + 1, 64, 2) and batch.action.shape == (T, 64)
    assert batch.reward.shape == batch.done.shape == batch.mask.shape == (T, 64)
    sampled = _ids(batch, axis=0)
    assert set(sampled) == set(ids)  # 64 draws from 6 slots: all of them appear
    for b, i in enumerate(sampled):
        _assert_equal(_episode(batch, b, axis=1), _episode(added, ids.index(i)))


def test_the_ring_overwrites_the_oldest_episode():
    buffer = replay.add(replay.empty(5, T, OBS, ACTION), _episodes([0, 1, 2]))
    assert int(buffer.position) == 3 and int(buffer.size) == 3
    buffer = replay.add(buffer, _episodes([3, 4, 5]))
    np.testing.assert_array_equal(_ids(buffer.storage, axis=1), [5, 1, 2, 3, 4])
    _assert_equal(buffer.storage, _episodes([5, 1, 2, 3, 4]))
    assert int(buffer.position) == 1 and int(buffer.size) == 5
    assert buffer.position.dtype == buffer.size.dtype == jnp.int32


def test_one_add_that_wraps_writes_both_ends():
    buffer = replay.add(replay.empty(5, T, OBS, ACTION), _episodes([0, 1, 2, 3]))
    assert int(buffer.position) == 4
    buffer = jax.jit(replay.add)(buffer, _episodes([4, 5, 6]))  # slots 4, 0, 1
    _assert_equal(buffer.storage, _episodes([5, 6, 2, 3, 4]))
    assert int(buffer.position) == 2 and int(buffer.size) == 5


def test_only_filled_slots_are_sampled():
    buffer = _filled([3, 6], capacity=8)
    assert int(buffer.size) == 2
    sampled = _ids(replay.sample(buffer, jax.random.PRNGKey(1), 2000), axis=0)
    assert set(sampled) == {3, 6}  # never -1: the zero rows of the 6 empty slots


def test_sampling_is_uniform_with_replacement():
    n, buffer = 20_000, _filled([0, 1, 2, 3], capacity=8)
    counts = np.bincount(_ids(replay.sample(buffer, jax.random.PRNGKey(2), n), axis=0), minlength=8)
    assert counts[4:].sum() == 0
    sigma = np.sqrt(n * 0.25 * 0.75)
    assert np.all(np.abs(counts[:4] - n / 4) < 5 * sigma), counts


@pytest.mark.filterwarnings("error")  # the cast is explicit: no scatter dtype-promotion warning
def test_uint8_observations_stay_uint8_and_exact():
    obs_spec = jax.ShapeDtypeStruct((3, 3, 1), jnp.uint8)
    buffer = replay.empty(4, 2, obs_spec, ACTION)
    assert buffer.storage.obs.dtype == jnp.uint8
    pixels = np.arange(2 * 3 * 9).reshape(2, 3, 3, 3, 1) % 256
    pixels[0, 1, 2, 2, 0] = 255
    pixels[1] = 255 - pixels[1]
    episodes = replay.Episodes(
        obs=jnp.asarray(pixels, jnp.int32),  # cast on write to the buffer's uint8
        action=jnp.zeros((2, 2), jnp.int32),
        reward=jnp.zeros((2, 2), jnp.float32),
        done=jnp.zeros((2, 2), bool),
        mask=jnp.ones((2, 2), bool),
    )
    buffer = replay.add(buffer, episodes)
    assert buffer.storage.obs.dtype == jnp.uint8
    np.testing.assert_array_equal(buffer.storage.obs[:2], pixels.astype(np.uint8))
    batch = replay.sample(buffer, jax.random.PRNGKey(3), 16)
    assert batch.obs.dtype == jnp.uint8 and batch.obs.shape == (3, 16, 3, 3, 1)
    for b in range(16):
        assert any(np.array_equal(batch.obs[:, b], p) for p in pixels.astype(np.uint8))
    assert int(batch.obs.max()) == 255


def test_the_mask_of_a_variable_length_episode_survives():
    buffer = _filled([1], capacity=3)  # lasts 2 of the T = 4 steps, truncated (done never set)
    batch = replay.sample(buffer, jax.random.PRNGKey(4), 5)
    np.testing.assert_array_equal(batch.mask, np.tile([[True], [True], [False], [False]], (1, 5)))
    assert not batch.done.any()
    np.testing.assert_array_equal(batch.obs[3:], 0)  # rows after o_L are padding
    terminal = replay.sample(_filled([2], capacity=3), jax.random.PRNGKey(4), 1)  # 3 steps, ends terminal
    np.testing.assert_array_equal(terminal.mask[:, 0], [True, True, True, False])
    np.testing.assert_array_equal(terminal.done[:, 0], [False, False, True, False])


def test_vmap_over_runs_equals_separate_runs():
    runs = []
    for r in range(3):  # different fill levels and positions per run, one of them wrapping on the next add
        buffer = replay.empty(5, T, OBS, ACTION)
        for k in range(r + 1):
            buffer = replay.add(buffer, _episodes([10 * r + 2 * k, 10 * r + 2 * k + 1]))
        runs.append(buffer)
    new = [_episodes([10 * r + 7, 10 * r + 8]) for r in range(3)]
    keys = jax.random.split(jax.random.PRNGKey(5), 3)

    def step(buffer, episodes, key):
        buffer = replay.add(buffer, episodes)
        return buffer, replay.sample(buffer, key, 6)

    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    together = jax.jit(jax.vmap(step))(stack(runs), stack(new), keys)
    separate = [jax.jit(step)(runs[r], new[r], keys[r]) for r in range(3)]
    _assert_equal(together, stack(separate))
    assert [int(p) for p in together[0].position] == [4, 1, 3]


def test_bad_sizes_are_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="^capacity: must be at least 1, got 0"):
        replay.empty(0, T, OBS, ACTION)
    with pytest.raises(ValueError, match="^episode_length: must be at least 1, got 0"):
        replay.empty(3, 0, OBS, ACTION)
    with pytest.raises(ValueError, match="^episodes: 3 episodes in one add do not fit a buffer of capacity 2"):
        replay.add(replay.empty(2, T, OBS, ACTION), _episodes([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^episodes: obs has shape \(1, 4, 2\), expected \(1, 5, 2\)"):
        replay.add(replay.empty(2, T, OBS, ACTION), _episodes([0]).replace(obs=jnp.zeros((1, T, 2))))


def test_episode_capacity_counts_a_padding_row_per_episode_and_is_capped():
    assert replay.episode_capacity(1_000_000, 275, 10**9) == 3623
    assert replay.episode_capacity(int(1e6), 275, 500) == 500
    assert replay.episode_capacity(100, 275, 500) == 1
    assert replay.episode_capacity(1_000_000, 275, 0) == 1


def test_num_bytes_is_the_size_of_the_empty_storage():
    pixels = (jax.ShapeDtypeStruct((5, 5, 3), jnp.uint8), jax.ShapeDtypeStruct((2,), jnp.float32))
    for obs, action in [(OBS, ACTION), pixels]:
        storage = replay.empty(7, 3, obs, action).storage
        assert replay.num_bytes(7, 3, obs, action) == sum(x.nbytes for x in jax.tree.leaves(storage))
    assert replay.num_bytes(3623, 275, jax.ShapeDtypeStruct((64, 64, 3), jnp.uint8), ACTION) == 3623 * (
        276 * 64 * 64 * 3 + 275 * (4 + 4 + 1 + 1)
    )
