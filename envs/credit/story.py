"""The three-chapter episode shared by Visual Match and Key-to-Door (pycolab's ``storytelling.Story``).

An episode is explore -> distractor -> reward, each a 7x11 board with its own frame counter (0 on its first
frame, k after its k-th action). A chapter of length N takes exactly N actions: the action that ends it is
applied (move, pickups, rewards) and the observation returned is the NEXT chapter's first frame (player at
that chapter's start, no action applied). The episode is T = explore_len + distractor_len + reward_len steps
long and ends with ``terminated=True`` on step T (the original learner marks that step terminal); there is
no other ending and ``is_truncated`` is always False.

Within a step (pycolab's update order): move the player (blocked cells and the board edge are no-ops), then
the chapter's objects (distractor: apple pickup then respawn; task-specific pickups/doors), then the timer and
chapter switch. Reward per step = apples (distractor) + the task's final reward. ``info["success"]`` (bool,
every step, meaningful on the last) is the task's solved flag: the reward chapter's goal was reached, which
equals the original's "reward-chapter reward > 0" whenever final_reward > 0.

Subclasses define the explore/reward chapters: ``_reset_task``, ``_blocked``, ``_task_objects``,
``_objects`` and the class constants ``LAYOUTS`` (int32[3, 7, 11] wall codes) and ``REWARD_START``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.credit import board


@struct.dataclass
class CreditState:
    """Per-episode state. Cells are int32[2] (row, col); boards bool/int32[7, 11].

    time: steps taken; chapter: 0 explore / 1 distractor / 2 reward; chapter_frame: actions taken in it;
    apples / last_pickup: distractor apples present / frame of last pickup (-1 never); has_key, key_cell,
    key_pickup_frame (explore frame of the pickup, -1 never): Key-to-Door; target (door index 0..2) and
    colour_cell: Visual Match; door_used: a door was touched (VM) / opened (KtD); solved: success;
    reward_chapter_return: reward collected in the reward chapter.
    """

    time: jax.Array
    chapter: jax.Array
    chapter_frame: jax.Array
    player: jax.Array
    apples: jax.Array
    last_pickup: jax.Array
    has_key: jax.Array
    key_cell: jax.Array
    key_pickup_frame: jax.Array
    target: jax.Array
    colour_cell: jax.Array
    door_used: jax.Array
    solved: jax.Array
    reward_chapter_return: jax.Array


@struct.dataclass
class CreditParams:
    """Chapter lengths (actions), rewards and distractor settings; none of them changes a shape."""

    explore_len: Any = 15
    distractor_len: Any = 250
    reward_len: Any = 10
    final_reward: Any = 10.0
    apple_reward: Any = 1.0
    num_apples: Any = 10
    apple_respawn_delay: Any = 20

    @property
    def episode_len(self):
        return self.explore_len + self.distractor_len + self.reward_len


def check_lengths(explore_len, distractor_len, reward_len) -> None:
    for name, value in (("explore_len", explore_len), ("distractor_len", distractor_len), ("reward_len", reward_len)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class ChapterEnv(environment.Environment):
    """Base of the credit-assignment tasks. Observation uint8[75] (egocentric 5x5 RGB, CHW); Discrete(4)
    actions N/S/W/E, out-of-range actions clipped to 0..3."""

    IMAGE_SHAPE = (3, board.VIEW, board.VIEW)  # the flat observation as an image, channel-major (agents' conv encoders)
    LAYOUTS: Any = None  # int32[3, 7, 11]: wall codes of explore, distractor, reward boards
    REWARD_START: tuple[int, int] = (5, 5)

    # --- task hooks ----------------------------------------------------------------------------------
    def _reset_task(self, key: jax.Array, params) -> dict:
        """Task fields of the initial state: player (explore start), key_cell, target, colour_cell."""
        raise NotImplementedError

    def _blocked(self, state: CreditState, params) -> jax.Array:
        """bool[7, 11]: cells the player cannot enter in the current chapter."""
        return self._layout(state.chapter) == board.WALL

    def _task_objects(self, state: CreditState, params) -> tuple[CreditState, jax.Array]:
        """Explore/reward-chapter objects after the move (state.chapter_frame is the new frame)."""
        raise NotImplementedError

    def _objects(self, state: CreditState, params) -> list[tuple[Any, Any, Any]]:
        """What is drawn over the chapter's walls and apples, bottom to top (pycolab's z-order): a list of
        (cell int32[2] or None for the player's cell, code, shown: bool)."""
        raise NotImplementedError

    # --- shared drawing ------------------------------------------------------------------------------
    def board_codes(self, state: CreditState, params) -> jax.Array:
        """int32[7, 11]: the full current board (walls, objects, player) as cell codes."""
        codes = self._base_codes(state)
        for cell, code, shown in self._objects(state, params):
            codes = board.put(codes, state.player if cell is None else cell, code, shown)
        return codes

    def _base_codes(self, state: CreditState) -> jax.Array:
        """Walls of the current chapter plus the distractor's apples (drawn below the player)."""
        codes = self._layout(state.chapter)
        return jnp.where((state.chapter == board.DISTRACTOR) & state.apples, board.APPLE, codes)

    def _layout(self, chapter: jax.Array) -> jax.Array:
        """int32[7, 11]: the wall codes of ``chapter``, selected (an indexed read is a gather under vmap)."""
        layouts = jnp.asarray(self.LAYOUTS)
        return jnp.where(
            chapter == board.EXPLORE, layouts[0], jnp.where(chapter == board.DISTRACTOR, layouts[1], layouts[2])
        )

    def _chapter_start(self, chapter: jax.Array) -> jax.Array:
        return jnp.where(
            chapter == board.REWARD,
            jnp.asarray(self.REWARD_START, jnp.int32),
            jnp.asarray(board.DISTRACTOR_START, jnp.int32),
        )

    # --- gymnax API ----------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params) -> tuple[jax.Array, CreditState]:
        key_task, key_apples = jax.random.split(key)
        zero = jnp.int32(0)
        task = dict(key_cell=jnp.zeros(2, jnp.int32), target=zero, colour_cell=jnp.zeros(2, jnp.int32))
        task.update(self._reset_task(key_task, params))
        state = CreditState(
            time=zero,
            chapter=zero,
            chapter_frame=zero,
            apples=board.sample_apples(key_apples, params.num_apples),
            last_pickup=jnp.full((board.ROWS, board.COLS), -1, jnp.int32),
            has_key=jnp.bool_(False),
            key_pickup_frame=jnp.int32(-1),
            door_used=jnp.bool_(False),
            solved=jnp.bool_(False),
            reward_chapter_return=jnp.float32(0.0),
            **task,
        )
        return self.get_obs(state, params), state

    def step_env(self, key, state: CreditState, action, params):
        frame = state.chapter_frame + 1
        player = board.try_move(state.player, jnp.asarray(action, jnp.int32), self._blocked(state, params))
        state = state.replace(player=player, chapter_frame=frame)

        apples, last_pickup, eaten = board.update_apples(
            state.apples, state.last_pickup, player, frame, params.apple_respawn_delay
        )
        in_distractor = state.chapter == board.DISTRACTOR
        state = state.replace(
            apples=jnp.where(in_distractor, apples, state.apples),
            last_pickup=jnp.where(in_distractor, last_pickup, state.last_pickup),
        )
        apple_reward = jnp.where(in_distractor & eaten, params.apple_reward, 0.0)

        state, task_reward = self._task_objects(state, params)
        reward = (apple_reward + task_reward).astype(jnp.float32)
        in_reward_room = state.chapter == board.REWARD

        lengths = jnp.stack(
            [jnp.asarray(params.explore_len), jnp.asarray(params.distractor_len), jnp.asarray(params.reward_len)]
        )
        chapter_over = frame >= lengths[state.chapter]
        terminated = chapter_over & in_reward_room
        switch = chapter_over & ~in_reward_room
        next_chapter = jnp.minimum(state.chapter + switch, board.REWARD).astype(jnp.int32)
        state = state.replace(
            time=(state.time + 1).astype(jnp.int32),
            chapter=next_chapter,
            chapter_frame=jnp.where(switch, 0, frame).astype(jnp.int32),
            player=jnp.where(switch, self._chapter_start(next_chapter), player).astype(jnp.int32),
            reward_chapter_return=state.reward_chapter_return + jnp.where(in_reward_room, reward, 0.0),
        )
        return self.get_obs(state, params), state, reward, terminated, {"success": state.solved}

    def get_obs(self, state: CreditState, params=None, key=None) -> jax.Array:
        """uint8[75]: the egocentric 5x5 RGB view, channel-major: ``egocentric_view(board_codes, player)``.

        The objects are drawn into the 5x5 crop of the walls and apples rather than onto the 7x11 board (the
        same view for less work; the player is always the centre cell)."""
        window = board.crop(self._base_codes(state), state.player)
        for cell, code, shown in self._objects(state, params):
            if cell is None:
                window = jnp.where(board.VIEW_CENTRE & shown, code, window)
            else:
                window = board.put_in_view(window, cell, state.player, code, shown)
        return board.view_rgb(window)

    def is_truncated(self, state: CreditState, params) -> jax.Array:
        return jnp.bool_(False)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0, 255, (board.OBS_SIZE,), jnp.uint8)

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(board.NUM_ACTIONS)

    @property
    def num_actions(self) -> int:
        return board.NUM_ACTIONS
