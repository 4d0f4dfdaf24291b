"""StyleGAN2 training pieces as pure functions, and make(config) -> GanVariant.

What the official training loop keeps inside its modules is explicit here:
model_state = {"g_buffers": <the generator's "buffers" collection (noise_const)>,
               "w_avg": f32[w_dim] (truncation centre, an EMA of w),
               "pl_mean": f32[] (path-length EMA)}
and every function returns the updated values instead of mutating them.
Hyperparameters default to Karras et al. 2020 (config F) / NVlabs' StyleGAN2 loss.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gans.variants.stylegan2.networks import Discriminator, Generator, channels_from_base

STYLE_MIXING_PROB = 0.9  # probability that a training batch mixes two latents (Karras et al. 2019, Sec. 3.1)
W_AVG_BETA = 0.998  # decay of the w_avg moving average
PL_DECAY = 0.01  # decay of the pl_mean moving average
PL_BATCH_SHRINK = 2  # the path-length phase uses batch_size // PL_BATCH_SHRINK samples
PL_WEIGHT = 2.0  # weight of the path-length penalty
R1_INTERVAL = 16  # lazy regularisation: the R1 phase runs every 16 steps
PL_INTERVAL = 4  # lazy regularisation: the path-length phase runs every 4 steps


def initial_model_state(g_buffers, w_dim):
  """The explicit buffers at the start of training: noise_const from init, w_avg 0, pl_mean 0."""
  return {"g_buffers": g_buffers, "w_avg": jnp.zeros((w_dim,), jnp.float32), "pl_mean": jnp.zeros((), jnp.float32)}


def lazy_regularization(learning_rate, betas, interval):
  """Adam settings for a loss that also carries a regulariser applied every `interval` steps.

  The regularised loss takes interval+1 optimizer steps per `interval` minibatches, so
  lr and the Adam betas are rescaled by c = interval / (interval + 1) to keep the
  effective per-minibatch dynamics (Karras et al. 2020, App. B).
  """
  ratio = interval / (interval + 1)
  return learning_rate * ratio, tuple(beta ** ratio for beta in betas)


def update_w_avg(w_avg, w, beta=W_AVG_BETA):
  """w_avg <- lerp(mean_batch(w), w_avg, beta): the truncation centre tracked during training.

  ws[:, 0] of a (style-mixed) training batch is always the unmixed w, as mixing never
  replaces layer 0.
  """
  batch_mean = jnp.mean(jax.lax.stop_gradient(w), axis=0)
  return batch_mean + (w_avg - batch_mean) * beta


def mix_styles(key, ws, ws_other, mixing_prob=STYLE_MIXING_PROB):
  """Style-mixing regularisation: ws[:, cutoff:] <- ws_other[:, cutoff:] with probability mixing_prob.

  One cutoff per batch, uniform in {1, ..., num_ws - 1}, as in the official loss;
  without mixing the batch is returned unchanged.
  """
  num_ws = ws.shape[1]
  # One uniform draw for both choices: every jax.random call site is slow to compile on CPU.
  cutoff_u, apply_u = jax.random.uniform(key, (2,))
  cutoff = jnp.minimum(1 + jnp.floor(cutoff_u * (num_ws - 1)).astype(jnp.int32), num_ws - 1)
  cutoff = jnp.where(apply_u < mixing_prob, cutoff, num_ws)
  from_other = (jnp.arange(num_ws) >= cutoff)[None, :, None]
  return jnp.where(from_other, ws_other, ws)


def training_ws(generator, g_params, key, z, c=None, style_mixing_prob=STYLE_MIXING_PROB):
  """ws as the official training pass makes them: no truncation, then style mixing with a fresh z."""
  other_z_key, mixing_key = jax.random.split(key)
  variables = {"params": g_params}  # the mapping network has no buffers
  ws = generator.apply(variables, z, c, method=Generator.map)
  if style_mixing_prob > 0:
    other_z = jax.random.normal(other_z_key, z.shape, z.dtype)
    ws = mix_styles(mixing_key, ws, generator.apply(variables, other_z, c, method=Generator.map), style_mixing_prob)
  return ws


def generate_for_training(generator, g_params, g_buffers, key, z, c=None, style_mixing_prob=STYLE_MIXING_PROB,
                          noise_mode="random"):
  """(img_NHWC, ws) as the official training pass makes them: style mixing, random noise."""
  ws_key, noise_key = jax.random.split(key)
  ws = training_ws(generator, g_params, ws_key, z, c, style_mixing_prob)
  img_NHWC = generator.apply({"params": g_params, "buffers": g_buffers}, ws, noise_mode,
                             method=Generator.synthesize, rngs={"noise": noise_key})
  return img_NHWC, ws


def path_length_penalty(synthesize, ws, key, pl_mean, pl_decay=PL_DECAY):
  """Path-length regularisation (Karras et al. 2020, Sec. 3.2).

  synthesize: ws -> img_NHWC, closing over the generator's parameters (differentiable).
  Per sample, the length |J_w^T y| of the image-space gradient for y ~ N(0, I)/sqrt(H W),
  root-mean-squared over the num_ws layers, is pulled toward its running mean a.
  Returns (penalty [N] = (length - a)^2, new pl_mean, lengths [N]); the loss is
  penalty.mean() * PL_WEIGHT (times PL_INTERVAL under lazy regularisation).
  """
  img_NHWC, pullback = jax.vjp(synthesize, ws)
  height, width = img_NHWC.shape[1:3]
  noise = jax.random.normal(key, img_NHWC.shape, img_NHWC.dtype) / np.sqrt(height * width)
  (grads,) = pullback(noise)  # d/dws sum(img * noise)
  lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))
  new_pl_mean = jax.lax.stop_gradient(pl_mean + (jnp.mean(lengths) - pl_mean) * pl_decay)
  return jnp.square(lengths - new_pl_mean), new_pl_mean, lengths


def generator_sample(generator, params, model_state, key, n, c=None, truncation_psi=1.0, noise_mode="const"):
  """n images NHWC from params["g"]: z ~ N(0, I), optional truncation toward model_state["w_avg"].

  noise_mode 'const' by default so that sample grids of successive checkpoints are
  comparable (as the official snapshots do); 'random' draws noise from `key`.
  """
  if generator.c_dim and c is None:
    raise ValueError(f"this generator is conditional: pass labels c of shape [{n}, {generator.c_dim}]")
  z_key, noise_key = jax.random.split(key)
  z = jax.random.normal(z_key, (n, generator.z_dim), jnp.float32)
  variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
  return generator.apply(variables, z, c, model_state["w_avg"], truncation_psi, None, noise_mode,
                         rngs={"noise": noise_key})


# ----------------------------------------------------------------------------------------
# The variant. A sketch against gans/state.py: not exercised end to end until the trainer
# runs it; the parity tests do not depend on it.


def make(config):
  """StyleGAN2 (config F) as a GanVariant: phases d_main, d_r1 (every 16), g_main, g_pl (every 4).

  Reads config.model: z_dim, w_dim, c_dim, channel_base, channel_max, mapping_layers,
  mbstd_group_size, conv_clamp, r1_gamma, style_mixing_prob, pl_weight (defaults: the
  official ones), and config.data.resolution / channels. The optimizer settings of the
  regularised groups should be passed through lazy_regularization() by the experiment.
  """
  from gans import losses  # imported here so the networks and converter do not depend on it
  from gans.state import GanVariant, Phase

  model = config.model
  resolution, img_channels = config.data.resolution, config.data.channels
  z_dim, w_dim, c_dim = model.get("z_dim", 512), model.get("w_dim", 512), model.get("c_dim", 0)
  channels = channels_from_base(resolution, model.get("channel_base", 32768), model.get("channel_max", 512))
  conv_clamp = model.get("conv_clamp", 256)
  generator = Generator(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                        channels=channels, mapping_layers=model.get("mapping_layers", 8), conv_clamp=conv_clamp)
  discriminator = Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels, channels=channels,
                                mbstd_group_size=model.get("mbstd_group_size", 4), conv_clamp=conv_clamp)
  r1_gamma = model.get("r1_gamma", 10.0)
  style_mixing_prob = model.get("style_mixing_prob", STYLE_MIXING_PROB)
  pl_weight = model.get("pl_weight", PL_WEIGHT)

  def labels(batch):
    return batch["label"] if c_dim else None

  def init(key):
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((1, z_dim), jnp.float32)
    c = jnp.zeros((1, c_dim), jnp.float32) if c_dim else None
    g_variables = generator.init({"params": g_key}, z, c, noise_mode="const")
    d_variables = discriminator.init({"params": d_key}, jnp.zeros((1, resolution, resolution, img_channels)), c)
    params = {"g": g_variables["params"], "d": d_variables["params"]}
    return params, initial_model_state(g_variables["buffers"], w_dim)

  def fakes(params, model_state, key, n, c):
    z_key, g_key = jax.random.split(key)
    z = jax.random.normal(z_key, (n, z_dim), jnp.float32)
    return generate_for_training(generator, params["g"], model_state["g_buffers"], g_key, z, c, style_mixing_prob)

  def d_logits(params, img_NHWC, c):
    return discriminator.apply({"params": params["d"]}, img_NHWC, c)

  def d_main(params, model_state, batch, key):
    real, c = batch["image"], labels(batch)
    fake, ws = fakes(params, model_state, key, real.shape[0], c)
    loss = losses.minimax_d_loss(d_logits(params, real, c), d_logits(params, fake, c))
    new_state = dict(model_state, w_avg=update_w_avg(model_state["w_avg"], ws[:, 0]))
    return loss, ({"loss": loss}, new_state)

  def d_r1(params, model_state, batch, key):
    real, c = batch["image"], labels(batch)
    # The gradient of the summed logits, as the official loss takes it (minibatch std
    # couples the samples, so this is not exactly each sample's own gradient).
    penalty = losses.r1_penalty(lambda x: d_logits(params, x, c), real)
    loss = penalty * (r1_gamma / 2) * R1_INTERVAL
    return loss, ({"loss": loss, "r1_penalty": penalty}, model_state)

  def g_main(params, model_state, batch, key):
    c = labels(batch)
    fake, _ = fakes(params, model_state, key, batch["image"].shape[0], c)
    loss = losses.non_saturating_g_loss(d_logits(params, fake, c))
    return loss, ({"loss": loss}, model_state)

  def g_pl(params, model_state, batch, key):
    n = max(batch["image"].shape[0] // PL_BATCH_SHRINK, 1)
    c = labels(batch)
    c = None if c is None else c[:n]
    z_key, ws_key, pl_key, noise_key = jax.random.split(key, 4)
    z = jax.random.normal(z_key, (n, z_dim), jnp.float32)
    ws = training_ws(generator, params["g"], ws_key, z, c, style_mixing_prob)
    variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
    synthesize = lambda ws: generator.apply(variables, ws, "random", method=Generator.synthesize,
                                            rngs={"noise": noise_key})
    penalty, pl_mean, lengths = path_length_penalty(synthesize, ws, pl_key, model_state["pl_mean"])
    loss = jnp.mean(penalty) * pl_weight * PL_INTERVAL
    metrics = {"loss": loss, "pl_penalty": jnp.mean(penalty), "pl_length": jnp.mean(lengths)}
    return loss, (metrics, dict(model_state, pl_mean=pl_mean))

  def sample(params, model_state, key, n, **conditioning):
    return generator_sample(generator, params, model_state, key, n, **conditioning)

  return GanVariant(
    init=init,
    phases=(
      Phase("d_main", d_main, updates=("d",)),
      Phase("d_r1", d_r1, updates=("d",), every=R1_INTERVAL),
      Phase("g_main", g_main, updates=("g",)),
      Phase("g_pl", g_pl, updates=("g",), every=PL_INTERVAL),
    ),
    sample=sample,
    modules={"g": generator, "d": discriminator},
  )
