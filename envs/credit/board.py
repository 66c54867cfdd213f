"""Board primitives of the pycolab-style credit-assignment tasks (the TVT engine, re-expressed in JAX).

Boards are 7x11 integer grids of cell codes (``BACKGROUND`` ... ``BLUE``); ``PALETTE[code]`` is the uint8 RGB
colour, computed from pycolab's 0..1000 colours as floor(c * 255 / 1000). Layouts are written as ASCII art
(one string per row) and parsed once at import. The player moves one cell per action (0 North = row - 1,
1 South, 2 West, 3 East); moving into a blocked cell or off the board is a no-op (pycolab's MazeWalker with
``confined_to_board=True``). The observation is the egocentric 5x5 crop centred on the player (pycolab's
scrolling cropper with 2-cell margins), cells outside the board drawn as background, returned as uint8[75]
channel-major: index = channel * 25 + row * 5 + col.

Distractor chapter (shared by both tasks): 22 checkerboard apple cells, ``num_apples`` of them drawn per
episode without replacement; an apple eaten at chapter frame f reappears at frame f + delay + 1 (pycolab's
condition ``frame > last_pickup + respawn_every`` with respawn_every = 20, i.e. 21 frames later), checked
after the pickup in the same frame, and is eaten again only by a later move (or no-op) onto it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ROWS, COLS = 7, 11
VIEW = 5  # egocentric crop size; the player is at its centre (2, 2)
OBS_SIZE = 3 * VIEW * VIEW

# Cell codes (index into PALETTE).
BACKGROUND, WALL, PLAYER, KEY, DOOR, APPLE, INDICATOR, RED, GREEN, BLUE = range(10)
CODE_NAMES = ("background", "wall", "player", "key", "door", "apple", "indicator", "red", "green", "blue")

# pycolab colours on its 0..1000 scale (TVT's FIXED_COLOURS, the indicator, and hues 0, 1/3, 2/3).
_COLOURS_1000 = np.array([
    (800, 800, 800), (100, 100, 100), (898, 584, 430), (627, 321, 176), (529, 808, 922), (550, 700, 0),
    (1000, 1000, 1000), (1000, 0, 0), (0, 1000, 0), (0, 0, 1000)])
PALETTE = (_COLOURS_1000 * 255 // 1000).astype(np.uint8)  # uint8[10, 3]

NORTH, SOUTH, WEST, EAST = 0, 1, 2, 3
NUM_ACTIONS = 4
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)

EXPLORE, DISTRACTOR, REWARD = 0, 1, 2  # chapter ids

DISTRACTOR_ART = (
    "###########",
    "#a a a a a#",
    "# a a a a #",
    "#a a a a a#",
    "# a a a a #",
    "#a a + a a#",
    "###########",
)


def parse(art: tuple[str, ...]) -> np.ndarray:
    """ASCII art (7 strings of 11 characters) -> str[7, 11]; ValueError if the size is wrong."""
    grid = np.array([list(row) for row in art])
    if grid.shape != (ROWS, COLS):
        raise ValueError(f"board art must be {ROWS}x{COLS}, got {grid.shape}")
    return grid


def cells_of(art: tuple[str, ...], char: str) -> np.ndarray:
    """Row-major (row, col) positions of ``char`` in the art. int32[n, 2]."""
    return np.argwhere(parse(art) == char).astype(np.int32)


def wall_codes(art: tuple[str, ...]) -> np.ndarray:
    """int32[7, 11]: WALL where the art has '#', BACKGROUND elsewhere (objects are drawn from the state)."""
    return np.where(parse(art) == "#", WALL, BACKGROUND).astype(np.int32)


APPLE_CELLS = cells_of(DISTRACTOR_ART, "a")  # int32[22, 2]
DISTRACTOR_START = cells_of(DISTRACTOR_ART, "+")[0]  # (5, 5)


def try_move(pos: jax.Array, action: jax.Array, blocked: jax.Array) -> jax.Array:
    """pos: int32[2]; action: int in 0..3 (clipped); blocked: bool[7, 11]. Returns the new int32[2]."""
    step = jnp.asarray(MOVES)[jnp.clip(action, 0, NUM_ACTIONS - 1)]
    target = pos + step
    on_board = (target[0] >= 0) & (target[0] < ROWS) & (target[1] >= 0) & (target[1] < COLS)
    safe = jnp.clip(target, 0, jnp.array([ROWS - 1, COLS - 1]))
    free = on_board & ~blocked[safe[0], safe[1]]
    return jnp.where(free, target, pos).astype(jnp.int32)


def put(codes: jax.Array, cell: jax.Array, code: int | jax.Array, when: jax.Array | bool = True) -> jax.Array:
    """codes int32[7, 11] with ``code`` written at ``cell`` (int32[2]) where ``when``."""
    return codes.at[cell[0], cell[1]].set(jnp.where(when, code, codes[cell[0], cell[1]]))


def at(cell: jax.Array, other) -> jax.Array:
    """bool: two int32[2] cells are equal."""
    return jnp.all(cell == jnp.asarray(other))


def to_rgb(codes: jax.Array) -> jax.Array:
    """int32[..., ] codes -> uint8[..., 3] colours."""
    return jnp.asarray(PALETTE)[codes]


def egocentric_view(codes: jax.Array, pos: jax.Array) -> jax.Array:
    """codes int32[7, 11], pos int32[2] -> uint8[75]: the 5x5 crop centred on pos, channel-major."""
    half = VIEW // 2
    padded = jnp.pad(codes, half, constant_values=BACKGROUND)
    window = jax.lax.dynamic_slice(padded, (pos[0], pos[1]), (VIEW, VIEW))
    return to_rgb(window).transpose(2, 0, 1).reshape(OBS_SIZE)


def sample_apples(key: jax.Array, num_apples: jax.Array) -> jax.Array:
    """``num_apples`` of the 22 apple cells, uniformly without replacement. bool[7, 11]."""
    chosen = jax.random.permutation(key, len(APPLE_CELLS)) < num_apples
    return jnp.zeros((ROWS, COLS), bool).at[APPLE_CELLS[:, 0], APPLE_CELLS[:, 1]].set(chosen)


def update_apples(apples, last_pickup, pos, frame, respawn_delay):
    """One distractor frame after the player moved to ``pos`` (pickup, then respawn).

    apples: bool[7, 11] present apples; last_pickup: int32[7, 11] frame of the last pickup (-1 = never);
    frame: the chapter frame being computed (k on the k-th action). Returns (apples, last_pickup, eaten: bool).
    """
    eaten = apples[pos[0], pos[1]]
    apples = apples.at[pos[0], pos[1]].set(False)
    last_pickup = last_pickup.at[pos[0], pos[1]].set(jnp.where(eaten, frame, last_pickup[pos[0], pos[1]]))
    respawn = (last_pickup >= 0) & (frame > last_pickup + respawn_delay)
    return apples | respawn, last_pickup, eaten
