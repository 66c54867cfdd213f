"""Visual Match and Key-to-Door: exact timing, rewards, apples, doors, views, scripted policies, batching.

Expected values come from the spec (verified against SHM's pycolab code) and from the ASCII layouts read by
hand, not from this implementation's output. Compilation is kept to one batched rollout per environment
(policies and distractor lengths vary through traced arguments) plus one small scripted-step program.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.credit import KeyToDoor, VisualMatch, board

BG, WALL_PX, PLAYER_PX = 204, 25, 228  # red channel of background, wall, player (spec palette)
ORACLE, RANDOM_ACTIONS, NO_KEY = -1, 3, 4  # policy modes (0..2 = walk to that Visual Match door)
NUM_STEPS = 530  # long enough for one D = 500 Visual Match episode (525 steps)


def vm_policy(state, params, key, mode):
    """Random actions outside the reward room; in it, walk to door ``mode`` (0..2), the target (ORACLE), or
    keep acting randomly (RANDOM_ACTIONS). Path: up column 5 to row 2, across to the door's column, north."""
    random_action = jax.random.randint(key, (), 0, 4)
    door = jnp.where(mode == ORACLE, state.target, mode)
    door_col = jnp.array([2, 5, 8])[jnp.clip(door, 0, 2)]
    row, col = state.player[0], state.player[1]
    walk = jnp.where(
        row > 2, board.NORTH, jnp.where(col < door_col, board.EAST, jnp.where(col > door_col, board.WEST, board.NORTH))
    )
    scripted = (state.chapter == board.REWARD) & (mode != RANDOM_ACTIONS)
    return jnp.where(scripted, walk, random_action)


@partial(jax.jit, static_argnames=("env", "policy", "num_steps"))
def rollout(env, params, keys, modes, policy, num_steps):
    """Auto-resetting rollouts; params/keys/modes batched on axis 0. Returns obs0 [B, 75] and trace: per-step
    values [B, T, ...] plus start_player / start_key_cell [B, 2] of the first episode."""

    def one(key, p, mode):
        key, key_reset = jax.random.split(key)
        obs0, state0 = env.reset(key_reset, p)

        def body(state, key_t):
            key_act, key_env = jax.random.split(key_t)
            action = policy(state, p, key_act, mode)
            obs, state, reward, term, trunc, info = env.step(key_env, state, action, p)
            out = dict(
                obs=obs,
                reward=reward,
                terminated=term,
                truncated=trunc,
                success=info["success"],
                time=state.time,
                chapter=state.chapter,
                frame=state.chapter_frame,
                player=state.player,
                target=state.target,
                door_used=state.door_used,
                has_key=state.has_key,
            )
            return state, out

        _, trace = jax.lax.scan(body, state0, jax.random.split(key, num_steps))
        trace["start_player"], trace["start_key_cell"] = state0.player, state0.key_cell
        return obs0, trace

    return jax.vmap(one)(keys, params, modes)


def batch_params(env, distractor_lens):
    base = env.default_params
    n = len(distractor_lens)
    tiled = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n,) + jnp.shape(x)), base)
    return tiled.replace(distractor_len=jnp.asarray(distractor_lens, jnp.int32))


def red(obs):
    return np.asarray(obs).reshape(3, 5, 5)[0]


def episodes(trace, b):
    """(returns, successes) of env b's completed episodes."""
    ends = np.flatnonzero(np.asarray(trace["terminated"][b]))
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(trace["reward"][b]))])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return cum[ends + 1] - cum[starts], np.asarray(trace["success"][b])[ends]


# --------------------------------------------------------------------------------------------------------
# Visual Match
# --------------------------------------------------------------------------------------------------------
VM_RUN_D = [250, 500, 250, 500, 250, 500]
VM_RUN_MODES = [ORACLE, ORACLE, 0, 1, 2, RANDOM_ACTIONS]
VM_STATS = 1024  # extra environments with D = 30 for the success statistics


@pytest.fixture(scope="module")
def vm_run():
    env = VisualMatch()
    d = VM_RUN_D + [30] * VM_STATS
    modes = (
        VM_RUN_MODES
        + [int(m) for m in np.random.RandomState(0).randint(0, 3, VM_STATS // 2)]
        + [RANDOM_ACTIONS] * (VM_STATS // 2)
    )
    obs0, trace = rollout(
        env, batch_params(env, d), jax.random.split(jax.random.key(0), len(d)), jnp.asarray(modes), vm_policy, NUM_STEPS
    )
    return env, jax.tree.map(np.asarray, obs0), jax.tree.map(np.asarray, trace), np.asarray(modes)


def test_visual_match_episode_lengths_and_chapter_boundaries(vm_run):
    _, _, trace, _ = vm_run
    for b, d in enumerate(VM_RUN_D):
        T = 15 + d + 10
        assert T == {250: 275, 500: 525}[d]
        ends = np.flatnonzero(trace["terminated"][b])
        assert ends[0] == T - 1  # done on step T (index T - 1)
        assert not trace["truncated"][b].any()
        chapter = trace["chapter"][b]

        # step k's observation (index k - 1): chapter 0 through step 14, distractor from step 15, reward from 15 + D
        def first(c):
            return int(np.argmax(chapter[: T - 1] == c)) + 1

        assert first(1) == 15 and first(2) == 15 + d
        assert trace["frame"][b, 14] == 0 and trace["frame"][b, 15 + d - 1] == 0
        assert tuple(trace["player"][b, 14]) == (5, 5) and tuple(trace["player"][b, 15 + d - 1]) == (5, 5)


def test_visual_match_views_at_chapter_starts(vm_run):
    env, obs0, trace, _ = vm_run
    params = env.default_params
    for b, d in enumerate(VM_RUN_D[:2]):
        # reset: player at (2, 5) in the 3x3 ring, exactly one ring cell coloured (the target's colour)
        start = np.asarray(obs0[b]).reshape(3, 5, 5).transpose(1, 2, 0)
        assert tuple(start[2, 2]) == (228, 148, 109)
        ring = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]
        colours = [tuple(start[r, c]) for r, c in ring]
        expected_colour = tuple(board.PALETTE[board.RED + int(params.door_colours[trace["target"][b, 0]])])
        assert colours.count(expected_colour) == 1 and colours.count((25, 25, 25)) == 7
        assert expected_colour in {(255, 0, 0), (0, 255, 0), (0, 0, 255)}
        assert (start[0] == BG).all() and (start[4] == BG).all()
        # the explore view is constant (the player cannot move)
        assert (trace["obs"][b, :14] == obs0[b]).all()
        # first distractor frame: player (5, 5); crop rows = board rows 3..7 -> row 6 walls, row 7 off-board
        v = red(trace["obs"][b, 14])
        assert v[2, 2] == PLAYER_PX and (v[3] == WALL_PX).all() and (v[4] == BG).all()
        # first reward-room frame, read from the layout by hand: no door visible from the start
        expected = np.array(
            [[BG] * 5, [WALL_PX, BG, BG, BG, WALL_PX], [WALL_PX, BG, PLAYER_PX, BG, WALL_PX], [WALL_PX] * 5, [BG] * 5]
        )
        np.testing.assert_array_equal(red(trace["obs"][b, 15 + d - 1]), expected)
        np.testing.assert_array_equal(np.asarray(trace["obs"][b, 15 + d - 1]).reshape(3, 5, 5)[2, 2, 2], 109)


def test_visual_match_oracle_final_reward_timing_and_success(vm_run):
    _, _, trace, _ = vm_run
    for b, d in enumerate(VM_RUN_D[:2]):
        T = 15 + d + 10
        target = trace["target"][b, 0]
        moves = 4 if target == 1 else 7  # shortest paths from (5, 5) to the middle / side doors
        room = trace["reward"][b, 15 + d : T]  # rewards of reward-room steps 15 + D + 1 .. T
        assert room[moves - 1] == 10.0 and room.sum() == 10.0
        assert trace["success"][b, T - 1] and not trace["success"][b, : 15 + d + moves - 1].any()
        # the distractor's apples give exactly +1 each, only inside the distractor steps
        apples = trace["reward"][b, 15 : 15 + d]
        assert set(np.unique(apples)) <= {0.0, 1.0} and trace["reward"][b, :15].sum() == 0
    # every completed oracle episode succeeds; every episode's return = apples + 10
    for b in range(2):
        returns, success = episodes(trace, b)
        assert success.all() and (returns >= 10).all()


def test_visual_match_doors_vanish_after_the_first_touch(vm_run):
    _, _, trace, modes = vm_run
    for b in (2, 3, 4):  # walked to door 0, 1, 2 then kept pressing north
        d = VM_RUN_D[b]
        T = 15 + d + 10
        chose_target = trace["target"][b, 0] == modes[b]
        assert trace["reward"][b, 15 + d : T].sum() == (10.0 if chose_target else 0.0)
        assert trace["success"][b, T - 1] == chose_target
        touched = int(np.argmax(trace["door_used"][b, :T]))
        v = np.asarray(trace["obs"][b, touched]).reshape(3, 5, 5).transpose(1, 2, 0)
        pure = {(255, 0, 0), (0, 255, 0), (0, 0, 255)}
        assert not any(tuple(px) in pure for row in v for px in row)  # no coloured cell once touched
        assert tuple(trace["player"][b, touched]) == (1, (2, 5, 8)[modes[b]])
        assert v[2, 2, 0] == PLAYER_PX


def test_visual_match_random_door_choice_succeeds_one_third(vm_run):
    _, _, trace, modes = vm_run
    rows = len(VM_RUN_D) + np.arange(VM_STATS // 2)
    success = np.concatenate([episodes(trace, b)[1] for b in rows])
    assert len(success) > 4000
    # binomial std for p = 1/3 over > 4000 episodes is < 0.0075; tolerance 0.03 (> 4 std)
    assert abs(success.mean() - 1 / 3) < 0.03, success.mean()


def test_visual_match_random_actions(vm_run):
    """Uniformly random actions: a door is touched in a few episodes; among those the pick is the target about
    1/3 of the time; about 20 apples per 250 distractor steps."""
    _, _, trace, _ = vm_run
    rows = len(VM_RUN_D) + VM_STATS // 2 + np.arange(VM_STATS // 2)
    touched, success, last_reward = [], [], []
    for b in rows:
        ends = np.flatnonzero(trace["terminated"][b])
        touched.append(trace["door_used"][b, ends - 1])  # touched before the last step (the last returns a reset)
        success.append(trace["success"][b, ends])
        last_reward.append(trace["reward"][b, ends])
    touched, success, last_reward = map(np.concatenate, (touched, success, last_reward))
    assert (last_reward[success & ~touched] == 10.0).all()  # success without an earlier touch: on the last step
    # 10 random steps from (5, 5) rarely reach row 1 (about 5% of episodes): overall success is far below 1/3
    assert 0.01 < touched.mean() < 0.2 and success.mean() < 0.1
    # among touched episodes (> 100 here) the door is still uniform: std <= 0.047, tolerance 0.15 (> 3 std)
    assert touched.sum() > 100 and abs(success[touched].mean() - 1 / 3) < 0.15, success[touched].mean()
    apples = trace["reward"][5, 15:265].sum()  # the D = 250 random-action episode
    assert 8 <= apples <= 35, apples


def test_visual_match_vmap_1024_shapes_and_dtypes_stable_across_auto_reset(vm_run):
    env, obs0, trace, _ = vm_run
    assert obs0.shape[1:] == (75,) and obs0.dtype == np.uint8
    assert trace["obs"].shape[0] >= 1024 and trace["obs"].dtype == np.uint8
    assert trace["reward"].dtype == np.float32 and trace["success"].dtype == np.bool_
    b = len(VM_RUN_D)  # D = 30: T = 55, several auto-resets within the rollout
    ends = np.flatnonzero(trace["terminated"][b])
    np.testing.assert_array_equal(ends, np.arange(54, NUM_STEPS, 55))
    assert (trace["time"][b, ends] == 0).all() and (trace["chapter"][b, ends] == 0).all()
    space = env.observation_space(env.default_params)
    assert space.shape == (75,) and space.dtype == jnp.uint8 and env.action_space().n == 4


# --------------------------------------------------------------------------------------------------------
# Engine pieces: apples, moves, clipping (one small compiled program)
# --------------------------------------------------------------------------------------------------------
VM = VisualMatch()
SCRIPT_LEN = 26


@jax.jit
def run_script(state, actions, params):
    """Visual Match step_env (no auto-reset) over int actions[SCRIPT_LEN]: rewards, apple at (1, 1), players,
    door_used, solved, doors' pixels seen by the board."""

    def body(s, a):
        _, s, r, _, _ = VM.step_env(jax.random.key(0), s, a, params)
        return s, (r, s.apples[1, 1], s.player, s.door_used, s.solved)

    return jax.lax.scan(body, state, actions)[1]


def scripted_state(chapter, player, **fields):
    _, state = VM.reset(jax.random.key(0), VM.default_params)
    return state.replace(
        chapter=jnp.int32(chapter), chapter_frame=jnp.int32(0), player=jnp.array(player, jnp.int32), **fields
    )


def test_apple_pickup_and_respawn_after_21_frames_under_a_standing_player():
    state = scripted_state(board.DISTRACTOR, (1, 2), apples=jnp.zeros((7, 11), bool).at[1, 1].set(True))
    # frame 1: West onto the apple at (1, 1); frames 2..: North into the wall (no-op), standing on the cell
    actions = jnp.array([board.WEST] + [board.NORTH] * 24 + [7])  # the last action is out of range -> East
    rewards, present, players, _, _ = map(np.asarray, run_script(state, actions, VM.default_params))
    assert rewards[0] == 1.0 and not present[0]  # eaten on frame 1
    assert not present[1:20].any()  # frames 2..21 (index 1..20) still gone
    assert present[21] and rewards[21] == 0.0  # reappears on frame 22 = 1 + 21 under the player, not eaten yet
    assert rewards[22] == 1.0 and not present[22]  # eaten again by the next (no-op) move
    assert (players[:-1] == [1, 1]).all()  # moves into walls are no-ops
    assert tuple(players[-1]) == (1, 2)  # action 7 clipped to 3 = East


def test_visual_match_one_choice_per_episode():
    """Touching a wrong door first removes all doors: walking onto the target's cell later gives nothing."""
    params = VM.default_params.replace(reward_len=100)  # room to walk without the chapter ending
    state = scripted_state(board.REWARD, (2, 2), target=jnp.int32(1))
    walk = [board.NORTH, board.SOUTH, board.EAST, board.EAST, board.EAST, board.NORTH]  # door 0, then door 1 cell
    actions = jnp.array(walk + [board.NORTH] * (SCRIPT_LEN - len(walk)))
    rewards, _, players, door_used, solved = map(np.asarray, run_script(state, actions, params))
    assert tuple(players[0]) == (1, 2) and door_used[0] and not solved[0]
    assert tuple(players[5]) == (1, 5)  # on the (vanished) target door
    assert rewards.sum() == 0.0 and not solved.any()
    # the same walk with door 0 as the target pays +10 on the first touch only
    rewards, _, _, _, solved = map(np.asarray, run_script(state.replace(target=jnp.int32(0)), actions, params))
    assert rewards[0] == 10.0 and rewards.sum() == 10.0 and solved.all()


def test_registered_credit_ids():
    ids = set(envs.list_ids("credit"))
    assert ids == {
        "VisualMatch250",
        "VisualMatch500",
        "VisualMatch-Short",
        "KeyToDoor250",
        "KeyToDoor500",
        "KeyToDoor-Short",
    }
    assert envs.resolve("KeytoDoor500").kwargs == {"distractor_len": 500}
    spec = envs.resolve("VisualMatch500")
    env = spec.factory(**spec.kwargs)
    assert env.default_params.episode_len == 525
    with pytest.raises(ValueError, match="distractor_len"):
        VisualMatch(distractor_len=0)


# --------------------------------------------------------------------------------------------------------
# Key-to-Door
# --------------------------------------------------------------------------------------------------------
KTD_RUN_D = [250, 500, 250, 500]
KTD_RUN_MODES = [ORACLE, ORACLE, NO_KEY, NO_KEY]
KTD_STATS = 256  # oracle environments with D = 30 (about 12 episodes each)


def ktd_policy(state, params, key, mode):
    """ORACLE: walk to the key (through the doorway, cols 4-6 of row 3), then North in the reward room.
    NO_KEY: South during exploration (never reaches the key rows), North in the reward room.
    Random actions in the distractor (and everywhere in RANDOM_ACTIONS mode)."""
    random_action = jax.random.randint(key, (), 0, 4)
    row, col = state.player[0], state.player[1]
    key_row, key_col = state.key_cell[0], state.key_cell[1]
    to_doorway = jnp.where(col < 4, board.EAST, jnp.where(col > 6, board.WEST, board.NORTH))
    to_key = jnp.where(
        col < key_col,
        board.EAST,
        jnp.where(col > key_col, board.WEST, jnp.where(row > key_row, board.NORTH, board.SOUTH)),
    )
    fetch = jnp.where(state.has_key, random_action, jnp.where(row >= 3, to_doorway, to_key))
    explore_action = jnp.where(mode == NO_KEY, board.SOUTH, fetch)
    action = jnp.where(
        state.chapter == board.EXPLORE,
        explore_action,
        jnp.where(state.chapter == board.REWARD, board.NORTH, random_action),
    )
    return jnp.where(mode == RANDOM_ACTIONS, random_action, action)


@pytest.fixture(scope="module")
def ktd_run():
    env = KeyToDoor()
    d = KTD_RUN_D + [30] * KTD_STATS
    modes = KTD_RUN_MODES + [ORACLE] * KTD_STATS
    obs0, trace = rollout(
        env,
        batch_params(env, d),
        jax.random.split(jax.random.key(1), len(d)),
        jnp.asarray(modes),
        ktd_policy,
        NUM_STEPS,
    )
    return env, jax.tree.map(np.asarray, obs0), jax.tree.map(np.asarray, trace)


def test_key_to_door_lengths_and_final_reward_timing(ktd_run):
    _, _, trace = ktd_run
    for b, d in enumerate(KTD_RUN_D):
        T = 10 + d + 3
        assert T == {250: 263, 500: 513}[d]
        assert np.flatnonzero(trace["terminated"][b])[0] == T - 1 and not trace["truncated"][b].any()
        chapter = trace["chapter"][b]
        assert chapter[8] == 0 and chapter[9] == 1  # step 10 returns the distractor's first frame
        assert chapter[10 + d - 2] == 1 and chapter[10 + d - 1] == 2  # step 10 + D returns the reward room
        assert tuple(trace["player"][b, 10 + d - 1]) == (3, 5)
        room = trace["reward"][b, 10 + d : T]
        if KTD_RUN_MODES[b] == ORACLE:  # key picked up, then North, North: +10 on step 10 + D + 2 (262 for D=250)
            np.testing.assert_array_equal(room, [0.0, 10.0, 0.0])
            assert trace["success"][b, T - 1]
        else:  # no key: the door is a wall; the player stops below it
            np.testing.assert_array_equal(room, 0.0)
            assert not trace["success"][b, T - 1]
            assert not trace["has_key"][b, : T - 1].any()
            assert [tuple(p) for p in trace["player"][b, 10 + d : T - 1]] == [(2, 5), (2, 5)]


def test_key_to_door_views(ktd_run):
    _, _, trace = ktd_run
    for b, d in enumerate(KTD_RUN_D):
        # reward room, read from the layout by hand: the door is visible from the start (3, 5)
        door_red = 134
        expected = np.array(
            [
                [WALL_PX, WALL_PX, door_red, WALL_PX, WALL_PX],
                [WALL_PX, BG, BG, BG, WALL_PX],
                [WALL_PX, BG, PLAYER_PX, BG, WALL_PX],
                [WALL_PX, BG, BG, BG, WALL_PX],
                [WALL_PX] * 5,
            ]
        )
        np.testing.assert_array_equal(red(trace["obs"][b, 10 + d - 1]), expected)
        if KTD_RUN_MODES[b] == ORACLE:  # standing in the open door: the door is drawn above the player
            assert tuple(np.asarray(trace["obs"][b, 10 + d + 1]).reshape(3, 5, 5)[:, 2, 2]) == (134, 206, 235)


def test_key_to_door_oracle_always_succeeds_and_indicator_shows_one_frame(ktd_run):
    _, _, trace = ktd_run
    successes, pickups = [], 0
    for b in range(len(KTD_RUN_D), len(KTD_RUN_D) + KTD_STATS):
        returns, success = episodes(trace, b)
        successes.append(success)
        assert ((returns >= 10) == success).all()
        got_key = np.flatnonzero(np.diff(trace["has_key"][b].astype(int)) == 1) + 1  # steps whose obs follows pickup
        for t in got_key:
            if trace["chapter"][b, t] != 0:
                continue  # picked up on the chapter's last action: the next chapter's frame is shown
            pickups += 1
            row, col = trace["player"][b, t]
            assert row in (1, 2)
            view = np.asarray(trace["obs"][b, t]).reshape(3, 5, 5).transpose(1, 2, 0)
            white = [(r, c) for r in range(5) for c in range(5) if tuple(view[r, c]) == (255, 255, 255)]
            assert white == [(0 - row + 2, 5 - col + 2)]  # board cell (0, 5)
            nxt = np.asarray(trace["obs"][b, t + 1]).reshape(3, 5, 5).transpose(1, 2, 0)
            assert not (nxt == 255).all(axis=-1).any()  # gone on the next frame
    successes = np.concatenate(successes)
    assert len(successes) > 2000 and successes.all()
    assert pickups > 2000


def test_key_to_door_reset_positions_and_key_visibility(ktd_run):
    """Key and start uniform over their 10 cells; the key shows in the reset view iff it lies within 2 rows
    and 2 columns of the player (the egocentric 5x5 window)."""
    _, obs0, trace = ktd_run
    key_cells, players = trace["start_key_cell"], trace["start_player"]
    assert {tuple(c) for c in key_cells} == {(r, c) for r in (1, 2) for c in range(3, 8)}
    assert {tuple(c) for c in players} == {(r, c) for r in (4, 5) for c in range(3, 8)}
    for view, key_cell, player in zip(obs0, key_cells, players):
        view = view.reshape(3, 5, 5).transpose(1, 2, 0)
        assert tuple(view[2, 2]) == (228, 148, 109)
        key_px = [(r, c) for r in range(5) for c in range(5) if tuple(view[r, c]) == (159, 81, 44)]
        dr, dc = key_cell - player
        visible = abs(dr) <= 2 and abs(dc) <= 2
        assert key_px == ([(dr + 2, dc + 2)] if visible else [])


# --------------------------------------------------------------------------------------------------------
# Both tasks
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["visual_match", "key_to_door"])
def test_view_is_the_crop_of_the_drawn_board(task):
    """get_obs draws the objects into the 5x5 crop; it must equal cropping the fully drawn 7x11 board, on every
    state of scripted and random episodes (explore objects, the key and its one-frame indicator, doors, apples,
    the player at the board's edges)."""
    env, policy, modes = (
        (VisualMatch(distractor_len=30), vm_policy, [ORACLE, 0, 1, 2, RANDOM_ACTIONS])
        if task == "visual_match"
        else (KeyToDoor(distractor_len=30), ktd_policy, [ORACLE, NO_KEY, RANDOM_ACTIONS])
    )
    modes = jnp.asarray(modes * 8)
    params = env.default_params

    def one(key, mode):
        _, state0 = env.reset(key, params)

        def body(state, key_t):
            key_act, key_env = jax.random.split(key_t)
            _, state, *_ = env.step(key_env, state, policy(state, params, key_act, mode), params)
            view = env.get_obs(state, params)
            return state, (view, board.egocentric_view(env.board_codes(state, params), state.player), state.chapter)

        return jax.lax.scan(body, state0, jax.random.split(key, 150))[1]

    views, crops, chapters = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), len(modes)), modes)
    np.testing.assert_array_equal(np.asarray(views), np.asarray(crops))
    assert set(np.unique(np.asarray(chapters)).tolist()) == {board.EXPLORE, board.DISTRACTOR, board.REWARD}


def test_apples_are_a_uniform_subset_of_the_apple_cells():
    """Each reset shows exactly num_apples apples, only on apple cells, every cell and every pair of cells as
    often as a uniform subset makes them (a rank rule that favoured some cells or neighbours would show)."""
    cells, n_draws = board.APPLE_CELLS, 6000
    sample = jax.jit(jax.vmap(board.sample_apples, in_axes=(0, None)))
    for num_apples in (0, 10, 22):
        apples = np.asarray(sample(jax.random.split(jax.random.key(num_apples), n_draws), num_apples))
        on_cells = apples[:, cells[:, 0], cells[:, 1]]  # bool[n, 22]
        assert (apples.sum(axis=(1, 2)) == num_apples).all() and (on_cells.sum(axis=1) == num_apples).all()
    # num_apples = 10 of 22: P(cell) = 10/22 (SE 0.0064), P(two given cells) = 10*9/(22*21) (SE 0.0047)
    on_cells = np.asarray(sample(jax.random.split(jax.random.key(99), n_draws), 10))[:, cells[:, 0], cells[:, 1]]
    np.testing.assert_allclose(on_cells.mean(axis=0), 10 / 22, atol=0.03)
    pairs = (on_cells[:, :, None] & on_cells[:, None, :]).mean(axis=0)[np.triu_indices(len(cells), 1)]
    np.testing.assert_allclose(pairs, 10 * 9 / (22 * 21), atol=0.025)
