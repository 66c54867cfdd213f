"""Named starting points: ``from_preset(name, **overrides)``.

``default`` is ``TrainConfig()`` itself (``python train.py``). The ``paper-*`` presets hold the SHM paper's
settings (Le et al., ICLR 2025) for POPGym (PPO), credit assignment (SAC-Discrete) and meta-RL (SAC), with
every deviation said where it is set; their memory sizes (and the Point Robot budget) follow the chosen memory
and task. ``ppo-credit`` / ``ppo-meta`` run the same tasks and memories under PPO, ``pqn-credit`` under recurrent
PQN: other learners than the paper's.
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


def _popgym_env_defaults(config: TrainConfig) -> dict[str, Any]:
    return {"memory_kwargs": _paper_memory_kwargs(config.agent.memory, config.env.env_id)}


def _pomdp_env_defaults(config: TrainConfig) -> dict[str, Any]:
    """The official pomdp-baselines sizes: SHM H = 24, clamp ±100, shortcut, output to rnn_hidden_size (64 on
    Wind, 128 on Point Robot and the credit tasks; a GRU gets that hidden size, the SAC actor's GRU too); per task
    family, the meta budgets (SAC's loop on Point Robot: 400 warm-up trials, 200 x 25 trials, 1000 updates each)."""
    memory, env_id = config.agent.memory, config.env.env_id
    hidden = 64 if env_id.startswith("Wind") else 128
    defaults: dict[str, Any] = {"memory_kwargs": {}}
    if memory.startswith("shm"):
        defaults["memory_kwargs"] = {"memory_size": 24, "clamp": 100.0, "shortcut": True, "projection_size": hidden}
    elif memory == "gru":
        defaults["memory_kwargs"] = {"hidden_size": hidden}
    off_policy = config.algo in ("sac", "sacd")
    if off_policy:
        defaults["post_size"] = hidden
        if config.algorithm.actor_memory == "gru":
            defaults["actor_memory_kwargs"] = {"hidden_size": hidden}
    if env_id.startswith("PointRobot"):
        if off_policy:  # T = 200: 400 * 200 + 200 * 25 * 200 = 1.08M steps
            defaults.update(
                warmup_episodes=400, num_envs=25, updates_per_iter=1000, batch_size=32, buffer_size=4_000_000
            )
            defaults["total_timesteps"] = 400 * 200 + 200 * 25 * 200
        else:  # PPO with SAC's 1.08M steps on Point Robot (Wind: 510k)
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
    memory_norm=False,  # the paper's agent: its read-out goes to the projection unnormalised
)

# pomdp-baselines-style agent: no time encoding, ReLU embedders, [128, 128] heads (as its MLP heads), no memory norm.
_POMDP_AGENT = dict(time_encoding=False, feature_norm=False, post_size=128, head_hidden_size=128, memory_norm=False)

PRESETS: dict[str, dict[str, Any]] = {
    # `python train.py`: TrainConfig() itself. SHM (H = 128, no shortcut, no output projection) with the paper
    # agent's time encoding and a LayerNorm on its read-out (memory_norm, automatic for SHM cores: the shm-study's
    # choice) on RepeatFirstEasy: the task shows no start flag and SHM's keys depend on the current input only, so the
    # encoded step is what singles out the first card.
    "default": {},
    # The paper's POPGym setup in PureJaxRL layout: 64 envs x 1024 steps, 8 minibatches, 30 epochs, the official
    # agent's init, SHM with the paper's random θ (memory sizes per task level: _paper_memory_kwargs).
    "paper-popgym": dict(_PAPER_POPGYM),
    # The same with what the official POPGym code actually runs: θ always row 0 of Θ (its index truncates
    # uniform [0, 1) floats to 0), i.e. the "shm-fixed-theta" core; the paper's table most likely came from this.
    "paper-popgym-official": dict(_PAPER_POPGYM, memory="shm-fixed-theta"),
    # Credit assignment (Visual Match / Key-to-Door) as the paper ran it: pomdp-baselines' recurrent SAC-Discrete
    # with a GRU actor (the SHM authors' released code always runs one; --actor-memory shm for SHM in both) and the
    # official SHM critic (H = 24, clamp ±100, shortcut, projection to rnn_hidden_size 128). Fixed alpha 0.1, lr 3e-4,
    # gamma 0.99, tau 0.005, [128, 128] heads, batch 32 whole episodes, 0.25 updates per env step after 5 random
    # episodes, one episode per iteration. Budget: Memory-RL's VM-250 budget of 15,000 episodes (the SHM authors'
    # credit configs were withheld). pomdp-baselines' image encoder (two 2x2 convs, 8 and 16 channels, then Linear to
    # 100) feeds both the memory and the heads' shortcut. Cost: days per seed on a 2-core CPU (docs/training.md).
    "paper-credit": dict(
        _POMDP_AGENT,
        algo="sacd",
        env_id="VisualMatch250",
        encoder="conv",
        feature_size=100,
        pre_size=100,
        actor_memory="gru",
        num_envs=1,
        warmup_episodes=5,
        replay_ratio=0.25,
        batch_size=32,
        total_timesteps=15_000 * 275,
        lr=3e-4,
        alpha=0.1,
        autotune_alpha=False,
        gamma=0.99,
        tau=0.005,
        num_seeds=3,
    ),
    # Meta-RL (Wind / Point Robot, held-out tasks) as the paper ran it: pomdp-baselines' recurrent SAC with a GRU actor
    # and the official SHM critic (projection to rnn_hidden_size: 64 Wind, 128 Point Robot), alpha learned from 1
    # towards -2, gamma 0.9, lr 3e-4, in-goal steps terminal. Wind: 100 random trials, then 500 iterations of 10
    # trials with 500 updates on 64 trials each (510k steps); Point Robot: see _pomdp_env_defaults. Observation
    # embedding 32 + previous action/reward: one ReLU feature map of width 40 over the task's observation (which
    # carries them). 5 runs as the paper.
    "paper-meta": dict(
        _POMDP_AGENT,
        algo="sac",
        env_id="Wind-50-150",
        feature_size=40,
        pre_size=40,
        actor_memory="gru",
        num_envs=10,
        warmup_episodes=100,
        updates_per_iter=500,
        batch_size=64,
        total_timesteps=100 * 100 + 500 * 10 * 100,
        lr=3e-4,
        alpha=1.0,
        autotune_alpha=True,
        gamma=0.9,
        tau=0.005,
        num_seeds=5,
    ),
    # The credit tasks under PPO (not the paper's learner) with the official pomdp-baselines SHM (H = 24, clamp ±100,
    # shortcut, projection to rnn_hidden_size 128) and a flat MLP encoder of the 5x5 pixels. One rollout = one Visual
    # Match-250 episode (T = 275); 240 updates = 4.2M steps, Memory-RL's VM-250 budget (15,000 episodes).
    "ppo-credit": dict(
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
    # Meta-RL (Wind / Point Robot, held-out tasks) under PPO (not the paper's learner) with the official
    # pomdp-baselines SHM (projection to rnn_hidden_size: 64 Wind, 128 Point Robot), gamma 0.9 and lr 3e-4 as SAC's
    # configs. Budget as SAC's: Wind 512k steps, Point Robot 1.08M; 5 runs as the paper.
    "ppo-meta": dict(
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
    # credit tasks with the official pomdp-baselines SHM, the agent of ppo-credit. NOT the paper's learner: the
    # paper ran SAC-Discrete, so never overlay these curves on its. One rollout = one Visual Match-250 episode
    # (T = 275); a PQN step costs about 4 forward+backward passes (no replay), so it gets 2.5x ppo-credit's steps
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
    # POPGym Arcade's PPO-RNN baseline (popgym-arcade 0.0.7): 16 envs x 128 steps, 1e7 steps, 4 epochs of 16
    # minibatches, lr 1e-4, γ 0.99, GAE λ 0.95, clip 0.2, entropy 0.01, its CNN torso on the partially observable
    # frames (arcade:<Id>-full is the no-memory control). Needs the arcade extra (docs/environments.md).
    "arcade": dict(
        env_id="arcade:CountRecallEasy",
        encoder="arcade-cnn",
        num_envs=16,
        num_steps=128,
        total_timesteps=10_000_000,
        num_minibatches=16,
        update_epochs=4,
        lr=1e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        num_seeds=3,
    ),
    # Craftax-1M as Craftax_Baselines runs PPO-RNN (ppo_rnn.py defaults: lr 2e-4, 4 epochs, 8 minibatches, γ 0.99,
    # GAE λ 0.8, clip 0.2, entropy 0.01, value 0.5, grad norm 1.0, width 512, annealed lr; its 1M sweeps: 256 envs x
    # 16 steps) on Craftax-Symbolic-v1, the task of the published 1M scoreboard. Needs the craftax extra.
    "craftax-1m": dict(
        env_id="craftax:Craftax-Symbolic-v1",
        num_envs=256,
        num_steps=16,
        total_timesteps=1_000_000,
        num_minibatches=8,
        update_epochs=4,
        lr=2e-4,
        anneal_lr=True,
        gamma=0.99,
        gae_lambda=0.8,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=1.0,
        feature_size=512,
        pre_size=512,
        post_size=512,
        head_hidden_size=512,
        time_encoding=False,
        num_seeds=3,
    ),
}

# Presets whose defaults depend on the chosen algorithm, memory and task: config -> flat options.
_ENV_DEFAULTS: dict[str, Callable[[TrainConfig], dict[str, Any]]] = {
    "paper-popgym": _popgym_env_defaults,
    "paper-popgym-official": _popgym_env_defaults,
    "paper-credit": _pomdp_env_defaults,
    "paper-meta": _pomdp_env_defaults,
    "ppo-credit": _pomdp_env_defaults,
    "ppo-meta": _pomdp_env_defaults,
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
        extra = _ENV_DEFAULTS[name](config)
        config = with_overrides(config, **{k: v for k, v in extra.items() if k not in overrides})
    return config
