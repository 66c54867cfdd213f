"""Named starting points: ``from_preset(name, **overrides)``.

``default`` is ``TrainConfig()`` itself (``python train.py``). The ``paper-*`` presets hold the SHM paper's
settings (Le et al., ICLR 2025) for POPGym, credit assignment and meta-RL, with every deviation said where
it is set; their memory sizes (and the paper-meta budget) follow the chosen memory and task. ``pqn-credit``
runs another learner (recurrent PQN) on the credit tasks with paper-credit's agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shm_jax.config import ConfigError, TrainConfig, with_overrides


def _paper_memory_kwargs(memory: str, env_id: str) -> dict[str, Any]:
    """The paper's POPGym memory sizes (SHM m = 128 Easy / 32 Hard, 72 otherwise; projection 1024)."""
    size = 128 if env_id.endswith("Easy") else 32 if env_id.endswith("Hard") else 72
    if memory.startswith("shm"):
        return {"memory_size": size, "projection_size": 1024, "shortcut": True}
    if memory in ("linear-attention", "mlstm"):  # matrix memories: same m rule, output to post_size 1024
        return {"memory_size": size, "output_size": 1024}
    if memory == "ffm":  # FFM(memory m, context 4, out 1024); the paper's m for FFM is not reported
        return {"memory_size": 32, "context_size": 4, "output_size": 1024}
    if memory == "gru":  # tuned h not reported; 256 is one of the README's examples
        return {"hidden_size": 256}
    return {}


def _popgym_env_defaults(memory: str, env_id: str) -> dict[str, Any]:
    return {"memory_kwargs": _paper_memory_kwargs(memory, env_id)}


def _pomdp_env_defaults(memory: str, env_id: str) -> dict[str, Any]:
    """The official pomdp-baselines sizes: SHM H = 24, clamp ±100, shortcut, output to rnn_hidden_size (64 on
    Wind, 128 on Point Robot and the credit tasks; a GRU gets that hidden size); meta budgets per task family."""
    hidden = 64 if env_id.startswith("Wind") else 128
    defaults: dict[str, Any] = {"memory_kwargs": {}}
    if memory.startswith("shm"):
        defaults["memory_kwargs"] = {"memory_size": 24, "clamp": 100.0, "shortcut": True, "projection_size": hidden}
    elif memory == "gru":
        defaults["memory_kwargs"] = {"hidden_size": hidden}
    if env_id.startswith("PointRobot"):  # SAC ran 1.08M env steps on Point Robot (Wind: 510k)
        defaults["total_timesteps"] = 84 * 64 * 200
    return defaults


_PAPER_POPGYM = dict(
    num_envs=64,
    num_steps=1024,
    total_timesteps=15_000_000,
    num_minibatches=8,
    update_epochs=30,
    lr=5e-5,
    anneal_lr=False,
    gamma=0.99,
    gae_lambda=1.0,
    clip_eps=0.2,
    clip_value_loss=False,
    ent_coef=0.0,
    vf_coef=1.0,
    max_grad_norm=0.5,
    num_seeds=3,
    network_init="official",
)

# pomdp-baselines-style agent under PPO: no time encoding, ReLU embedders, [128, 128] heads (as its MLP heads).
_POMDP_AGENT = dict(time_encoding=False, feature_norm=False, post_size=128, head_hidden_size=128)

PRESETS: dict[str, dict[str, Any]] = {
    # `python train.py`: TrainConfig() itself. SHM (H = 128, no shortcut, no output projection) with the paper
    # agent's time encoding on RepeatFirstEasy: the task shows no start flag and SHM's keys depend on the current
    # input only, so the encoded step is what singles out the first card.
    "default": {},
    # The paper's POPGym setup in PureJaxRL layout: 64 envs x 1024 steps, 8 minibatches, 30 epochs, the official
    # agent's init, SHM with the paper's random θ (memory sizes per task level: _paper_memory_kwargs).
    "paper-popgym": dict(_PAPER_POPGYM),
    # The same with what the official POPGym code actually runs: θ always row 0 of Θ (its index truncates
    # uniform [0, 1) floats to 0), i.e. the "shm-fixed-theta" core; the paper's table most likely came from this.
    "paper-popgym-official": dict(_PAPER_POPGYM, memory="shm-fixed-theta"),
    # Credit assignment (Visual Match / Key-to-Door) with the official pomdp-baselines SHM (H = 24, clamp ±100,
    # shortcut, projection to rnn_hidden_size 128). DEVIATION: PPO here, the paper ran SAC-Discrete; and a flat MLP
    # encoder of the 5x5 pixels instead of pomdp-baselines' small conv net. One rollout = one Visual Match-250
    # episode (T = 275); 240 updates = 4.2M steps, Memory-RL's VM-250 budget (15,000 episodes).
    "paper-credit": dict(
        _POMDP_AGENT,
        env_id="VisualMatch250",
        pre_size=100,  # pomdp-baselines' image embedding width
        num_envs=64,
        num_steps=275,
        total_timesteps=240 * 64 * 275,
        num_minibatches=4,
        update_epochs=4,
        lr=3e-4,
        gamma=0.99,
        num_seeds=3,
    ),
    # Meta-RL (Wind / Point Robot, held-out tasks) with the official pomdp-baselines SHM (H = 24, clamp ±100,
    # shortcut, projection to rnn_hidden_size: 64 Wind, 128 Point Robot). DEVIATION: PPO here, the paper ran SAC
    # (γ 0.9 and lr 3e-4 as its configs). Budget as SAC's: Wind 512k steps, Point Robot 1.08M; 5 runs as the paper.
    "paper-meta": dict(
        _POMDP_AGENT,
        env_id="Wind-50-150",
        feature_size=64,
        pre_size=64,
        num_envs=64,
        num_steps=200,  # a Point Robot trial (2 x 100 steps), two Wind episodes
        total_timesteps=40 * 64 * 200,
        num_minibatches=4,
        update_epochs=4,
        lr=3e-4,
        gamma=0.9,
        num_seeds=5,
    ),
    # Recurrent PQN (Q(lambda) on on-policy rollouts, no replay buffer, no target network; purejaxql's PQN-RNN) on the
    # credit tasks with the official pomdp-baselines SHM, the agent of paper-credit. NOT the paper's learner: the
    # paper ran SAC-Discrete, so never overlay these curves on its. One rollout = one Visual Match-250 episode
    # (T = 275); a PQN step costs about 4 forward+backward passes (no replay), so it gets 2.5x paper-credit's steps
    # (600 updates = 10.6M). lambda 0.95 carries the door reward back over the 250 distractor steps.
    "pqn-credit": dict(
        _POMDP_AGENT,
        algo="pqn",
        env_id="VisualMatch250",
        pre_size=100,  # pomdp-baselines' image embedding width
        num_envs=64,
        num_steps=275,
        total_timesteps=600 * 64 * 275,
        num_minibatches=4,
        update_epochs=4,
        lr=3e-4,
        gamma=0.99,
        q_lambda=0.95,
        eps_start=1.0,
        eps_finish=0.05,
        eps_decay=0.25,
        num_seeds=3,
    ),
}

# Presets whose defaults depend on the chosen memory and task: (memory, env_id) -> flat options.
_ENV_DEFAULTS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "paper-popgym": _popgym_env_defaults,
    "paper-popgym-official": _popgym_env_defaults,
    "paper-credit": _pomdp_env_defaults,
    "paper-meta": _pomdp_env_defaults,
    "pqn-credit": _pomdp_env_defaults,
}


def from_preset(name: str = "default", **overrides: Any) -> TrainConfig:
    """A TrainConfig from preset ``name`` with flat ``overrides`` applied (unknown names raise ConfigError).

    For the paper presets, memory_kwargs (and the paper-meta budget) default to the official sizes for the chosen
    memory and env_id; options given in ``overrides`` win.
    """
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
    values = {**PRESETS[name], **overrides}
    config = with_overrides(TrainConfig(), **values)
    if name in _ENV_DEFAULTS:
        extra = _ENV_DEFAULTS[name](config.agent.memory, config.env.env_id)
        config = with_overrides(config, **{k: v for k, v in extra.items() if k not in overrides})
    return config
