"""Pieces shared by the unconditional variants: module application and the standard training phases.

The standard GAN has two phases per step: the discriminator phase (the
adversarial loss on a real and a generated batch, plus an optional gradient
penalty or R1) and the generator phase. Both read the modules through
`apply_module`, which threads mutable collections (BatchNorm statistics)
through `model_state` explicitly.
"""
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import losses
from gans.state import Phase

MIXTURE_SOURCES = ("ring8", "grid25")
VOXEL_SOURCES = ("shapes3d", "voxel_folder")  # occupancy grids, batch key "voxels"
AUDIO_SOURCES = ("spoken_digits", "wav_folder", "tfds_audio")  # [T, C] clips, batch key "audio"

# config.model.dtype -> the dtype the networks compute in. Parameters, optimizer state and EMA stay float32
# whatever it is (Flax's param_dtype), and so do BatchNorm statistics, the outputs (logits, samples) and
# the losses reduced from them.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(model_config):
  """The computation dtype named by config.model.dtype ("float32" when the experiment has no such field)."""
  name = model_config.get("dtype", "float32")
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.dtype={name!r} is not a computation dtype; valid: {', '.join(COMPUTE_DTYPES)}.")
  return COMPUTE_DTYPES[name]


def data_shape(data_config) -> tuple[int, ...]:
  """Shape of one example in data space: (2,) for the 2D mixtures, (D, H, W, 1) for voxels, (T, C) for
  audio, (H, W, C) for images."""
  if data_config.source in MIXTURE_SOURCES:
    return (2,)
  if data_config.source in VOXEL_SOURCES:
    return (data_config.resolution,) * 3 + (1,)
  if data_config.source in AUDIO_SOURCES:
    return (data_config.clip_length, data_config.channels)
  return (data_config.resolution, data_config.resolution, data_config.channels)


def real_data(batch) -> jax.Array:
  for name in ("image", "audio", "voxels"):
    if name in batch:
      return batch[name]
  return batch["x"]


def apply_module(module: nn.Module, params, collections, *args, train: bool, **kwargs):
  """Applies `module`; returns (outputs, updated collections) with BatchNorm in train mode when `train`."""
  variables = {"params": params, **collections}
  if not train or not collections:
    return module.apply(variables, *args, train=train, **kwargs), collections
  outputs, updates = module.apply(variables, *args, train=True, mutable=list(collections), **kwargs)
  return outputs, {**collections, **updates}


@jax.custom_vjp
def replay(params, outputs, vjp_fn):
  """`outputs` of an earlier `outputs, vjp_fn = jax.vjp(fn, params)`, differentiable in `params` through that
  VJP: a forward pass done once (GanVariant.prepare) serves every loss of the step without being redone."""
  del params, vjp_fn
  return outputs


def _replay_fwd(params, outputs, vjp_fn):
  return outputs, vjp_fn


def _replay_bwd(vjp_fn, outputs_grad):
  (params_grad,) = vjp_fn(outputs_grad)
  return params_grad, None, None


replay.defvjp(_replay_fwd, _replay_bwd)


class Prepared(NamedTuple):
  """A forward pass done once per step (GanVariant.prepare), with its VJP and auxiliary outputs (e.g. updated
  BatchNorm statistics). D's phase reads `outputs` as constants; G's phase calls `replay(params)`, which is
  differentiable in params through the stored VJP, so the pass is not redone."""
  outputs: Any
  vjp: Callable
  aux: Any

  def replay(self, params):
    return replay(params, self.outputs, self.vjp)


def forward_once(fn: Callable, params) -> Prepared:
  """`fn(params) -> (outputs, aux)` run once with its VJP."""
  return Prepared(*jax.vjp(fn, params, has_aux=True))


def init_module(module: nn.Module, key: jax.Array, *args, **kwargs):
  """Returns (params, other collections) of a freshly initialised module."""
  variables = module.init(key, *args, train=False, **kwargs)
  params = variables.pop("params")
  return params, dict(variables)


def pack_samples(x: jax.Array, pack: int) -> jax.Array:
  """PacGAN packing (Lin et al. 2018): groups `pack` consecutive samples into one D input.

  Vectors are concatenated along features, images along channels, so a packed
  discriminator is the unpacked one with a wider input layer.
  """
  if pack == 1:
    return x
  if x.shape[0] % pack:
    raise ValueError(f"Batch of {x.shape[0]} samples cannot be packed in groups of {pack}.")
  grouped = x.reshape((x.shape[0] // pack, pack) + x.shape[1:])
  return jnp.moveaxis(grouped, 1, -2).reshape(grouped.shape[:1] + x.shape[1:-1] + (pack * x.shape[-1],))


def gaussian_latents(key: jax.Array, n: int, z_dim: int) -> jax.Array:
  return jax.random.normal(key, (n, z_dim))


# z's distribution by name (config.model.latent): N(0, I) unless a paper says otherwise (WaveGAN: U[-1, 1]).
LATENTS = {
    "normal": gaussian_latents,
    "uniform": lambda key, n, z_dim: jax.random.uniform(key, (n, z_dim), minval=-1.0, maxval=1.0),
}


def latent_sampler(model_config) -> Callable:
  name = model_config.get("latent", "normal")
  if name not in LATENTS:
    raise ValueError(f"Unknown latent distribution {name!r}; valid: {', '.join(sorted(LATENTS))}.")
  return LATENTS[name]


def standard_training(generator: nn.Module, discriminator: nn.Module, model_config,
                      n_critic: int = 1, d_rng: str | None = None,
                      d_accuracy_threshold: float | None = None) -> tuple[tuple[Phase, ...], Callable | None]:
  """(phases, prepare) of an unconditional GAN with `model_config.loss`: its GanVariant fields.

  The D phase, then the G phase. With one D update per step (n_critic 1) G runs once per step (`prepare`): D
  learns on that batch of fakes and G through it (`Prepared.replay`), as the DCGAN reference's iteration. With
  n_critic > 1 every D update draws its own fakes and the G update its own (WGAN-GP's Algorithm 1), so there
  is no prepare.
  Optional regularisers on the D phase: `gp_weight` (WGAN-GP's lambda) and
  `r1_gamma` (penalty gamma/2 * E||grad D(x)||^2 on reals). Their weights are read from
  model_state["hyperparameters"] (see `standard_hyperparameters`), so vectorised sweeps may vary them.
  `d_rng` names the random stream a stochastic D draws from (WaveGAN's phase shuffle); each D
  call of a phase gets its own key.
  `d_accuracy_threshold` (3D-GAN's adaptive training): D's update applies only when its accuracy on the step's
  batch (`discriminator_accuracy`) is below the threshold, decided inside jit (metrics "accuracy", "updated").
  """
  adversarial = losses.get_adversarial_loss(model_config.loss)
  pack = model_config.get("pack", 1)
  z_dim = model_config.z_dim
  gp_weight = model_config.get("gp_weight", 0.0)
  r1_gamma = model_config.get("r1_gamma", 0.0)
  latents = latent_sampler(model_config)

  def generate(g_params, model_state, key, n):
    z = latents(key, n, z_dim)
    return apply_module(generator, g_params, model_state["g"], z, train=True)

  def prepare(params, model_state, batch, key, due):
    del due  # both phases read the fakes
    n = real_data(batch).shape[0]
    return {**batch, "fake": forward_once(lambda g_params: generate(g_params, model_state, key, n), params["g"])}

  def discriminate(params, d_collections, x, key=None):
    rngs = {} if d_rng is None else {"rngs": {d_rng: key}}
    return apply_module(discriminator, params["d"], d_collections, pack_samples(x, pack), train=True, **rngs)

  def d_keys(key, count):
    # Without a stochastic D the phase's key splits as it always has, so other variants' streams are unchanged.
    return [None] * count if d_rng is None else list(jax.random.split(jax.random.fold_in(key, 1), count))

  def d_loss(params, model_state, batch, key):
    real = real_data(batch)
    z_key, penalty_key = jax.random.split(key)
    real_key, fake_key, penalty_d_key = d_keys(key, 3)
    # G's BatchNorm statistics advance once per step, in the G phase, as in the DCGAN reference.
    fake = batch["fake"].outputs if "fake" in batch else generate(params["g"], model_state, z_key, real.shape[0])[0]
    # Real and fake batches go through D separately, so D's BatchNorm never mixes them.
    real_logits, d_collections = discriminate(params, model_state["d"], real, real_key)
    fake_logits, d_collections = discriminate(params, d_collections, fake, fake_key)
    loss = adversarial.d(real_logits, fake_logits)
    metrics = losses.logit_metrics(real_logits, fake_logits)
    if d_accuracy_threshold is not None:
      metrics["accuracy"] = discriminator_accuracy(real_logits, fake_logits)
      metrics["updated"] = (metrics["accuracy"] < d_accuracy_threshold).astype(jnp.float32)
    d_fn = lambda x: discriminate(params, d_collections, x, penalty_d_key)[0]
    if gp_weight:
      metrics["gradient_penalty"] = losses.gradient_penalty(d_fn, real, fake, penalty_key)
      loss += loss_weight(model_state, "gp_weight", gp_weight) * metrics["gradient_penalty"]
    if r1_gamma:
      metrics["r1"] = losses.r1_penalty(d_fn, real)
      loss += 0.5 * loss_weight(model_state, "r1_gamma", r1_gamma) * metrics["r1"]
    return loss, (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    if "fake" in batch:
      fake, g_collections = batch["fake"].replay(params["g"]), batch["fake"].aux
    else:
      fake, g_collections = generate(params["g"], model_state, key, real_data(batch).shape[0])
    fake_logits, _ = discriminate(params, model_state["d"], fake, d_keys(key, 1)[0])
    return adversarial.g(fake_logits), ({"fake_logits": jnp.mean(fake_logits)}, {**model_state, "g": g_collections})

  adaptive = {} if d_accuracy_threshold is None else {"apply_if": "updated"}
  phases = (Phase("d_main", d_loss, updates=("d",), repeats=n_critic, **adaptive),
            Phase("g_main", g_loss, updates=("g",)))
  return phases, prepare if n_critic == 1 else None


def discriminator_accuracy(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Fraction of the real and the fake batch D classifies right (logit > 0: real), the two weighted equally."""
  return 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))


def loss_weight(model_state, name: str, compiled: float):
  """A loss weight named in GanVariant.hyperparameters: this run's value, which the trainer keeps in
  model_state["hyperparameters"] (so vectorised runs may differ in it), else the config's constant."""
  return model_state.get("hyperparameters", {}).get(name, compiled)


def standard_hyperparameters(model_config) -> tuple[str, ...]:
  """The run-time loss weights of `standard_training`: the regularisers that are on (nonzero)."""
  return tuple(name for name in ("gp_weight", "r1_gamma") if model_config.get(name, 0.0))


def make_sampler(generator: nn.Module, z_dim: int, latents: Callable = gaussian_latents) -> Callable:
  """sample(params, model_state, key, n) -> n generated examples in data space (BatchNorm in eval mode)."""
  def sample(params, model_state, key, n):
    z = latents(key, n, z_dim)
    outputs, _ = apply_module(generator, params["g"], model_state["g"], z, train=False)
    return outputs
  return sample


def init_generator_discriminator(generator: nn.Module, discriminator: nn.Module, z_dim: int,
                                 example_shape: tuple[int, ...], pack: int = 1):
  """init(key) -> (params, model_state) for a G/D pair."""
  def init(key):
    g_key, d_key = jax.random.split(key)
    g_params, g_collections = init_module(generator, g_key, jnp.zeros((pack, z_dim)))
    example = pack_samples(jnp.zeros((pack,) + tuple(example_shape)), pack)
    d_params, d_collections = init_module(discriminator, d_key, example)
    return {"g": g_params, "d": d_params}, {"g": g_collections, "d": d_collections}
  return init
