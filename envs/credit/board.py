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
_COLOURS_1000 = np.array(
    [
        (800, 800, 800),
        (100, 100, 100),
        (898, 584, 430),
        (627, 321, 176),
        (529, 808, 922),
        (550, 700, 0),
        (1000, 1000, 1000),
        (1000, 0, 0),
        (0, 1000, 0),
        (0, 0, 1000),
    ]
)
PALETTE = (_COLOURS_1000 * 255 // 1000).astype(np.uint8)  # uint8[10, 3]

NORTH, SOUTH, WEST, EAST = 0, 1, 2, 3
NUM_ACTIONS = 4

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


# Cell updates and lookups are written as masks over the whole 7x11 board instead of indexed reads and writes:
# under vmap an indexed access becomes a gather/scatter per environment, a mask is a few vector ops.
_ROW_IDS = np.arange(ROWS, dtype=np.int32)[:, None]
_COL_IDS = np.arange(COLS, dtype=np.int32)[None, :]


def cell_mask(cell: jax.Array) -> jax.Array:
    """bool[7, 11]: True at ``cell`` (int32[2]) only; all False when the cell is off the board."""
    return (_ROW_IDS == cell[0]) & (_COL_IDS == cell[1])


def try_move(pos: jax.Array, action: jax.Array, blocked: jax.Array) -> jax.Array:
    """pos: int32[2]; action: int in 0..3 (clipped); blocked: bool[7, 11]. Returns the new int32[2]."""
    action = jnp.clip(action, 0, NUM_ACTIONS - 1)
    step = jnp.stack(
        [
            jnp.where(action == NORTH, -1, jnp.where(action == SOUTH, 1, 0)),
            jnp.where(action == WEST, -1, jnp.where(action == EAST, 1, 0)),
        ]
    )
    target = pos + step
    on_board = (target[0] >= 0) & (target[0] < ROWS) & (target[1] >= 0) & (target[1] < COLS)
    free = on_board & ~jnp.any(blocked & cell_mask(target))
    return jnp.where(free, target, pos).astype(jnp.int32)


def put(codes: jax.Array, cell: jax.Array, code: int | jax.Array, when: jax.Array | bool = True) -> jax.Array:
    """codes int32[7, 11] with ``code`` written at ``cell`` (int32[2]) where ``when``."""
    return jnp.where(cell_mask(cell) & when, code, codes)


def at(cell: jax.Array, other) -> jax.Array:
    """bool: two int32[2] cells are equal."""
    return jnp.all(cell == jnp.asarray(other))


def to_rgb(codes: jax.Array) -> jax.Array:
    """int32[..., ] codes -> uint8[..., 3] colours."""
    return jnp.asarray(PALETTE)[codes]


def crop(codes: jax.Array, pos: jax.Array) -> jax.Array:
    """codes int32[7, 11], pos int32[2] -> int32[5, 5]: the cells around pos (BACKGROUND off the board).

    A slice of the board padded with BACKGROUND (the start is always in range: pos is on the board). Under vmap
    it is a gather, which XLA:CPU fuses with the computation of the 25 cells it reads; a crop written as masks
    and selects recomputes the player's new position for each of its 7 x 11 x 5 candidates.
    """
    margin = VIEW // 2
    return jax.lax.dynamic_slice(jnp.pad(codes, margin), (pos[0], pos[1]), (VIEW, VIEW))


_VIEW_ROW_IDS = np.arange(VIEW, dtype=np.int32)[:, None]
_VIEW_COL_IDS = np.arange(VIEW, dtype=np.int32)[None, :]
VIEW_CENTRE = np.zeros((VIEW, VIEW), bool)
VIEW_CENTRE[VIEW // 2, VIEW // 2] = True  # where the player always is in its own view


def put_in_view(window: jax.Array, cell: jax.Array, pos: jax.Array, code, when=True) -> jax.Array:
    """window int32[5, 5] (the crop around pos) with ``code`` drawn at board ``cell`` where ``when``: the same as
    drawing it on the board before cropping (nothing is drawn when the cell is outside the view)."""
    local = cell - pos + VIEW // 2
    hit = (_VIEW_ROW_IDS == local[0]) & (_VIEW_COL_IDS == local[1])
    return jnp.where(hit & when, code, window)


def view_rgb(window: jax.Array) -> jax.Array:
    """int32[5, 5] codes -> uint8[75]: their colours, channel-major (a select per palette code, not a gather)."""
    rgb = jnp.zeros((3, VIEW, VIEW), jnp.int32)
    for code, colour in enumerate(PALETTE.astype(np.int32)):
        rgb = jnp.where(window[None] == code, jnp.asarray(colour)[:, None, None], rgb)
    return rgb.reshape(OBS_SIZE).astype(jnp.uint8)


def egocentric_view(codes: jax.Array, pos: jax.Array) -> jax.Array:
    """codes int32[7, 11], pos int32[2] -> uint8[75]: the 5x5 crop centred on pos, channel-major."""
    return view_rgb(crop(codes, pos))


def sample_apples(key: jax.Array, num_apples: jax.Array) -> jax.Array:
    """``num_apples`` of the 22 apple cells, uniformly without replacement. bool[7, 11].

    The cells whose random 32-bit draw ranks below ``num_apples`` (ties by cell index: a tie among 22 draws has
    probability < 6e-8): 22 x 22 comparisons instead of a sort, which XLA:CPU runs slowly under vmap.
    """
    draws = jax.random.bits(key, (len(APPLE_CELLS),), jnp.uint32)
    cells = jnp.arange(len(APPLE_CELLS))
    below = (draws[None, :] < draws[:, None]) | ((draws[None, :] == draws[:, None]) & (cells[None, :] < cells[:, None]))
    chosen = jnp.sum(below, axis=1) < num_apples  # rank of each cell's draw
    return jnp.zeros((ROWS, COLS), bool).at[APPLE_CELLS[:, 0], APPLE_CELLS[:, 1]].set(chosen)


def update_apples(apples, last_pickup, pos, frame, respawn_delay):
    """One distractor frame after the player moved to ``pos`` (pickup, then respawn).

    apples: bool[7, 11] present apples; last_pickup: int32[7, 11] frame of the last pickup (-1 = never);
    frame: the chapter frame being computed (k on the k-th action). Returns (apples, last_pickup, eaten: bool).
    """
    here = cell_mask(pos)
    eaten = jnp.any(apples & here)
    apples = apples & ~here
    last_pickup = jnp.where(here & eaten, frame, last_pickup)
    respawn = (last_pickup >= 0) & (frame > last_pickup + respawn_delay)
    return apples | respawn, last_pickup, eaten
