"""envs.render: board and plane frames, sequences, wrapped environments, GIF/PNG files."""

import jax
import numpy as np
import pytest
from PIL import Image

from shm_jax import envs
from shm_jax.envs.credit import KeyToDoor, VisualMatch, board
from shm_jax.envs.meta import PointRobot, Wind
from shm_jax.envs.render import render, render_sequence, save_frames

CELL = 8


def test_credit_frame_shows_the_full_board_with_the_player():
    env = KeyToDoor()
    params = env.default_params
    _, state = env.reset(jax.random.key(0), params)
    frame = np.asarray(render(env, state, params, cell=CELL))
    assert frame.shape == (7 * CELL, 11 * CELL, 3) and frame.dtype == np.uint8
    centres = frame[CELL // 2 :: CELL, CELL // 2 :: CELL]  # one pixel per board cell, away from the view outline
    np.testing.assert_array_equal(centres, board.PALETTE[np.asarray(env.board_codes(state, params))])
    r, c = np.asarray(state.player)
    assert tuple(centres[r, c]) == (228, 148, 109)
    assert tuple(centres[tuple(np.asarray(state.key_cell))]) == (159, 81, 44)  # the key, even outside the view
    assert (centres[0, 2:9] == 25).all()  # top wall of the explore room
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 4


def test_meta_frame_marks_goal_and_agent():
    env = PointRobot()
    params = env.default_params
    _, state = env.reset_to_task(jax.random.key(1), 0, params)
    frame = np.asarray(render(env, state, params, pixels_per_unit=40))
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8

    def pixel(x, y):  # world -> (row, col) for x in [-2, 2], y in [-1, 2]
        return int((2.0 - y) * 40), int((x + 2.0) * 40)

    goal = np.asarray(params.task_table[0])
    assert tuple(frame[pixel(*goal)]) == (40, 170, 60)
    assert tuple(frame[pixel(*np.asarray(state.pos))]) == (220, 40, 40)
    assert tuple(frame[0, 0]) == (255, 255, 255)
    wind_frame = np.asarray(render(Wind(), Wind().reset(jax.random.key(0))[1]))
    assert tuple(wind_frame[pixel(0.0, 1.0)]) == (40, 170, 60)  # Wind's goal (0, 1)


def test_sequence_of_wrapped_states_and_files(tmp_path):
    env, params = envs.make("VisualMatch-Short")
    obs, state = env.reset(jax.random.key(2), params)

    def body(s, key):
        _, s, *_ = env.step(key, s, jax.random.randint(key, (), 0, 4), params)
        return s, s

    _, states = jax.lax.scan(body, state, jax.random.split(jax.random.key(3), 20))
    frames = np.asarray(render_sequence(env, states, params, cell=CELL))
    assert frames.shape == (20, 7 * CELL, 11 * CELL, 3) and frames.dtype == np.uint8
    assert (frames[15] != frames[0]).any()  # explore room -> distractor at step 15
    gif = save_frames(frames, tmp_path / "episode.gif")
    png = save_frames(list(frames[:4]), tmp_path / "strip.png")
    with Image.open(gif) as image:  # Pillow merges identical consecutive frames, summing their durations
        assert image.n_frames >= 2 and image.size == (11 * CELL, 7 * CELL)
        total = 0
        for i in range(image.n_frames):
            image.seek(i)
            total += image.info["duration"]
        assert total == 20 * 100
    with Image.open(png) as image:
        assert image.size == (4 * 11 * CELL + 3 * 2, 7 * CELL)
    meta_env, meta_params = envs.make("Wind-50-150")
    _, meta_state = meta_env.reset(jax.random.key(0), meta_params)
    assert save_frames(render(meta_env, meta_state, meta_params), tmp_path / "wind.png").stat().st_size > 0


def test_bad_inputs_raise(tmp_path):
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="path"):
        save_frames([frame], tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="frames"):
        save_frames(np.zeros((2, 4, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="env"):
        render(object(), None, None)
    with pytest.raises(ValueError, match="cell"):
        vm = VisualMatch()
        render(vm, vm.reset(jax.random.key(0))[1], cell=1)
