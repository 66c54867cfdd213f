"""RGB frames of the credit-assignment and meta-RL environments, and a writer for them.

- ``render(env, state, params)`` -> uint8[H, W, 3] for one state; ``render_sequence(env, states, params)`` ->
  uint8[T, H, W, 3] for states stacked on a leading axis (e.g. a ``lax.scan`` trace). Both accept wrapped
  environments from ``envs.make`` (the inner environment and state are looked up) and are jittable.
- Credit tasks (Visual Match, Key-to-Door): the FULL 7x11 board of the current chapter (walls, apples, key,
  doors, indicator, player) in the task palette, ``cell`` pixels per board cell, with the agent's 5x5 view
  outlined (``show_view``). Size (7 * cell, 11 * cell).
- Meta tasks (Wind, Point Robot): a plot-like raster of the plane x in [-2, 2], y in [-1, 2] (the original's
  plot limits), ``pixels_per_unit`` per unit: white background, light axes, the unit semicircle of possible
  goals (Point Robot), the task's goal disc (green; at least 2 px), the start (0, 0) marker for Wind, and the
  agent (red dot). Positions outside the window are clipped to its edge.
- ``save_frames(frames, path)``: ``.gif`` -> animated GIF (Pillow); ``.png`` -> the frames side by side in one
  strip. frames: uint8[T, H, W, 3] or a list of uint8[H, W, 3].
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax.envs.credit import board
from shm_jax.envs.credit.story import ChapterEnv
from shm_jax.envs.meta.navigation import NavigationEnv
from shm_jax.envs.meta.point_robot import PointRobot

VIEW_OUTLINE = np.array([255, 215, 0], np.uint8)  # gold, distinct from the task palette
X_RANGE, Y_RANGE = (-2.0, 2.0), (-1.0, 2.0)


def _unwrap(env, state):
    """The innermost environment and state (``envs.make`` wrappers keep the inner state in ``env_state``)."""
    inner_env = getattr(env, "unwrapped", env)
    while hasattr(state, "env_state"):
        state = state.env_state
    return inner_env, state


def render(env, state, params=None, *, cell: int = 16, show_view: bool = True, pixels_per_unit: int = 40) -> jax.Array:
    """One RGB frame of ``state``. Returns uint8[H, W, 3] (sizes in the module docstring)."""
    env, state = _unwrap(env, state)
    if not isinstance(env, (ChapterEnv, NavigationEnv)):
        raise ValueError(
            f"render: env must be a credit (ChapterEnv) or meta (NavigationEnv) environment, got {type(env).__name__}"
        )
    params = env.default_params if params is None else params
    if isinstance(env, ChapterEnv):
        return render_board(env, state, params, cell=cell, show_view=show_view)
    return render_plane(env, state, params, pixels_per_unit=pixels_per_unit)


def render_sequence(env, states, params=None, **kwargs) -> jax.Array:
    """Frames of states stacked on axis 0 (params shared). Returns uint8[T, H, W, 3]."""
    inner_env, inner_states = _unwrap(env, states)
    return jax.vmap(lambda s: render(inner_env, s, params, **kwargs))(inner_states)


@partial(jax.jit, static_argnames=("env", "cell", "show_view"))
def render_board(env: ChapterEnv, state, params, *, cell: int = 16, show_view: bool = True) -> jax.Array:
    """uint8[7 * cell, 11 * cell, 3]: the full board in the task palette, the 5x5 view outlined."""
    if cell < 3:
        raise ValueError(f"cell must be >= 3 pixels, got {cell}")
    image = board.to_rgb(env.board_codes(state, params))  # uint8[7, 11, 3]
    image = jnp.repeat(jnp.repeat(image, cell, axis=0), cell, axis=1)
    if not show_view:
        return image
    rows = jnp.arange(board.ROWS * cell)[:, None]
    cols = jnp.arange(board.COLS * cell)[None, :]
    half = board.VIEW // 2
    top, left = (state.player[0] - half) * cell, (state.player[1] - half) * cell
    bottom, right = top + board.VIEW * cell - 1, left + board.VIEW * cell - 1
    inside = (rows >= top) & (rows <= bottom) & (cols >= left) & (cols <= right)
    edge = inside & ((rows == top) | (rows == bottom) | (cols == left) | (cols == right))
    return jnp.where(edge[..., None], jnp.asarray(VIEW_OUTLINE), image)


@partial(jax.jit, static_argnames=("env", "pixels_per_unit"))
def render_plane(env: NavigationEnv, state, params, *, pixels_per_unit: int = 40) -> jax.Array:
    """uint8[3 * ppu, 4 * ppu, 3]: the plane with goal, agent (and semicircle / start marker)."""
    if pixels_per_unit < 8:
        raise ValueError(f"pixels_per_unit must be >= 8, got {pixels_per_unit}")
    height = int((Y_RANGE[1] - Y_RANGE[0]) * pixels_per_unit)
    width = int((X_RANGE[1] - X_RANGE[0]) * pixels_per_unit)
    px = 1.0 / pixels_per_unit
    # pixel centres in world coordinates; row 0 is the top (y = Y_RANGE[1])
    xs = X_RANGE[0] + (jnp.arange(width) + 0.5) * px
    ys = Y_RANGE[1] - (jnp.arange(height) + 0.5) * px
    x, y = xs[None, :], ys[:, None]

    def disc(centre, radius):
        return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2

    image = jnp.full((height, width, 3), 255, jnp.uint8)
    axes = (jnp.abs(x) <= px / 2) | (jnp.abs(y) <= px / 2)
    image = jnp.where(axes[..., None], jnp.uint8(225), image)
    if isinstance(env, PointRobot):
        ring = (jnp.abs(jnp.sqrt(x**2 + y**2) - 1.0) <= px) & (y >= 0)
        image = jnp.where(ring[..., None], jnp.uint8(150), image)
    else:
        image = jnp.where(disc(jnp.zeros(2), 2.5 * px)[..., None], jnp.asarray([120, 120, 120], jnp.uint8), image)
    goal = env.goal(params, state.task_id)
    goal_disc = disc(goal, jnp.maximum(params.goal_radius, 2.0 * px))
    image = jnp.where(goal_disc[..., None], jnp.asarray([40, 170, 60], jnp.uint8), image)
    pos = jnp.clip(state.pos, jnp.array([X_RANGE[0], Y_RANGE[0]]), jnp.array([X_RANGE[1], Y_RANGE[1]]))
    agent = disc(pos, 3.0 * px)
    return jnp.where(agent[..., None], jnp.asarray([220, 40, 40], jnp.uint8), image)


def save_frames(frames, path, *, duration_ms: int = 100) -> Path:
    """Write frames (uint8[T, H, W, 3] or a list of uint8[H, W, 3]) to ``path``: ``.gif`` (animation, one frame
    per ``duration_ms``) or ``.png`` (a horizontal strip with 2-px white gaps). Returns the path."""
    from PIL import Image

    frames = np.asarray(frames) if not isinstance(frames, (list, tuple)) else np.stack([np.asarray(f) for f in frames])
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8[T, H, W, 3] with T >= 1, got shape {frames.shape}")
    frames = frames.astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    elif suffix == ".png":
        t, h, w, _ = frames.shape
        gap = 2
        strip = np.full((h, t * w + (t - 1) * gap, 3), 255, np.uint8)
        for i, frame in enumerate(frames):
            strip[:, i * (w + gap) : i * (w + gap) + w] = frame
        Image.fromarray(strip).save(path)
    else:
        raise ValueError(f"path must end in .gif or .png, got {path.name!r}")
    return path
