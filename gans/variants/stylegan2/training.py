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
                          noise_mode="random", fused_modconv=False):
  """(img_NHWC, ws) as the official training pass makes them: style mixing, random noise.

  fused_modconv=False as the official networks choose in training mode: scaling the
  activations around one shared convolution is also what a CPU runs fastest.
  """
  ws_key, noise_key = jax.random.split(key)
  ws = training_ws(generator, g_params, ws_key, z, c, style_mixing_prob)
  img_NHWC = generator.apply({"params": g_params, "buffers": g_buffers}, ws, noise_mode, fused_modconv,
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
# Pictures for --mode=sample: style mixing and latent interpolation (shared with StyleGAN v1).

MIXING_GRID = 4  # sources per side of the style-mixing picture
COARSE_WS = 4  # ws taken from the column source: the 4x4 and 8x8 layers ("coarse styles", Karras et al. 2019)
INTERPOLATION_ROWS, INTERPOLATION_STEPS = 4, 8


def style_pictures(z_dim, map_ws, synthesize):
  """{"style_mixing": fn, "interpolation": fn}, each fn(params, model_state, key, **conditioning)
  -> images[rows, columns, H, W, C] for GanVariant.pictures.

  map_ws(params, model_state, z, **conditioning) -> ws [N, num_ws, w_dim] (truncated as asked);
  synthesize(params, model_state, ws) -> images at the data resolution.
  style_mixing: the first row holds the column sources, the first column the row sources, the
  top-left cell is black; cell (i, j) is row source i with the coarse styles of column source j.
  interpolation: each row walks in w space from one latent to another in INTERPOLATION_STEPS.
  """
  def style_mixing(params, model_state, key, **conditioning):
    z = jax.random.normal(key, (2 * MIXING_GRID, z_dim), jnp.float32)
    ws = map_ws(params, model_state, z, **conditioning)
    rows, columns = ws[:MIXING_GRID], ws[MIXING_GRID:]
    coarse = (jnp.arange(ws.shape[1]) < COARSE_WS)[None, None, :, None]
    mixed = jnp.where(coarse, columns[None], rows[:, None])  # [rows, columns, num_ws, w_dim]
    images = synthesize(params, model_state, jnp.concatenate([ws, mixed.reshape((-1,) + ws.shape[1:])]))
    sources, mixed = images[:2 * MIXING_GRID], images[2 * MIXING_GRID:].reshape((MIXING_GRID, MIXING_GRID) +
                                                                                images.shape[1:])
    top = jnp.concatenate([-jnp.ones_like(sources[:1]), sources[MIXING_GRID:]])[None]
    body = jnp.concatenate([sources[:MIXING_GRID, None], mixed], axis=1)
    return jnp.concatenate([top, body])

  def interpolation(params, model_state, key, **conditioning):
    z = jax.random.normal(key, (2 * INTERPOLATION_ROWS, z_dim), jnp.float32)
    ws = map_ws(params, model_state, z, **conditioning)
    t = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)[None, :, None, None]
    path = ws[:INTERPOLATION_ROWS, None] + (ws[INTERPOLATION_ROWS:, None] - ws[:INTERPOLATION_ROWS, None]) * t
    images = synthesize(params, model_state, path.reshape((-1,) + ws.shape[1:]))
    return images.reshape((INTERPOLATION_ROWS, INTERPOLATION_STEPS) + images.shape[1:])

  return {"style_mixing": style_mixing, "interpolation": interpolation}


# ----------------------------------------------------------------------------------------
# The variant.

# config.model fields read by make(); a field the experiment leaves out takes this value
# (the official config F, except that c_dim 0 means unconditional).
# dtype: the synthesis and discriminator blocks' computation dtype, "float32" or "bfloat16" (parameters,
# optimizer state, EMA, mapping, styles, D's 4x4 epilogue and the losses stay float32; networks.py).
MODEL_DEFAULTS = dict(
  z_dim=512, w_dim=512, c_dim=0, channel_base=32768, channel_max=512, mapping_layers=8,
  mbstd_group_size=4, conv_clamp=256.0, r1_gamma=10.0, style_mixing_prob=STYLE_MIXING_PROB,
  pl_weight=PL_WEIGHT, r1_interval=R1_INTERVAL, pl_interval=PL_INTERVAL, dtype="float32")


def model_settings(model_config) -> dict:
  """config.model with every missing field at its MODEL_DEFAULTS value; unknown fields are an error."""
  unknown = sorted(set(model_config) - set(MODEL_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown StyleGAN2 config.model fields {unknown}; valid: {sorted(MODEL_DEFAULTS)}")
  return {name: model_config.get(name, default) for name, default in MODEL_DEFAULTS.items()}


def one_hot_labels(labels, c_dim):
  """Integer class labels [N] -> one-hot [N, c_dim]; [N, c_dim] vectors pass through."""
  labels = jnp.asarray(labels)
  if labels.ndim == 2:
    return labels.astype(jnp.float32)
  return jax.nn.one_hot(labels, c_dim, dtype=jnp.float32)


def lazy_optimizer_settings(learning_rate, b1, b2, interval):
  """config.optim.<group> fields for a group regularised every `interval` steps (0 = never)."""
  if not interval:
    return dict(learning_rate=learning_rate, b1=b1, b2=b2)
  learning_rate, (b1, b2) = lazy_regularization(learning_rate, (b1, b2), interval)
  return dict(learning_rate=learning_rate, b1=b1, b2=b2)


def ema_decay_for(batch_size, ema_kimg):
  """Per-step EMA decay with a half-life of ema_kimg thousand images, as the official G_ema.

  The official update is beta = 0.5 ** (batch / (ema_kimg * 1000)) per step: after
  ema_kimg thousand images the old weights have half their influence, whatever the batch.
  """
  return 0.5 ** (batch_size / (ema_kimg * 1000.0))


def make(config):
  """StyleGAN2 (config F) as a GanVariant: phases d_main, d_r1 (every 16), g_main, g_pl (every 4).

  Reads config.model (fields and defaults: MODEL_DEFAULTS) and config.data.resolution /
  channels. The lazy-regularisation correction of the optimizers is the experiment's
  business (lazy_optimizer_settings), because the trainer builds them from config.optim.
  Buffers are explicit model_state: w_avg (an EMA of the mapped w, updated by every phase
  that maps latents, as the official mapping network updates its own in d_main, g_main
  and g_pl) and pl_mean (the path-length EMA, updated by g_pl).
  """
  from gans import losses  # imported here so the networks and converter do not depend on it
  from gans.state import GanVariant, Phase

  model = model_settings(config.model)
  resolution, img_channels = config.data.resolution, config.data.channels
  z_dim, w_dim, c_dim = model["z_dim"], model["w_dim"], model["c_dim"]
  channels = channels_from_base(resolution, model["channel_base"], model["channel_max"])
  conv_clamp = model["conv_clamp"] or None  # 0 = no clamp
  from gans.variants import common  # imported here, as losses, so the networks and converter do not depend on it
  dtype = common.compute_dtype(model)
  generator = Generator(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                        channels=channels, mapping_layers=model["mapping_layers"], conv_clamp=conv_clamp, dtype=dtype)
  discriminator = Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels, channels=channels,
                                mbstd_group_size=model["mbstd_group_size"], conv_clamp=conv_clamp, dtype=dtype)
  r1_gamma, pl_weight = model["r1_gamma"], model["pl_weight"]
  r1_interval, pl_interval = model["r1_interval"], model["pl_interval"]
  style_mixing_prob = model["style_mixing_prob"]

  def labels(batch):
    return one_hot_labels(batch["label"], c_dim) if c_dim else None

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

  def with_w_avg(model_state, ws):
    # ws[:, 0] is the unmixed w of each sample (mixing never replaces layer 0).
    return dict(model_state, w_avg=update_w_avg(model_state["w_avg"], ws[:, 0]))

  def d_main(params, model_state, batch, key):
    real, c = batch["image"], labels(batch)
    fake, ws = fakes(params, model_state, key, real.shape[0], c)
    fake = jax.lax.stop_gradient(fake)  # D's phase: nothing flows back into G
    real_logits, fake_logits = d_logits(params, real, c), d_logits(params, fake, c)
    loss = losses.minimax_d_loss(real_logits, fake_logits)
    metrics = losses.logit_metrics(real_logits, fake_logits)
    return loss, (metrics, with_w_avg(model_state, ws))

  def d_r1(params, model_state, batch, key):
    del key
    real, c = batch["image"], labels(batch)
    # The gradient of the summed logits, as the official loss takes it (minibatch std
    # couples the samples, so this is not exactly each sample's own gradient).
    penalty = losses.r1_penalty(lambda x: d_logits(params, x, c), real)
    # Scaled by the interval so that the lazy penalty carries the weight of an every-step one.
    loss = penalty * (common.loss_weight(model_state, "r1_gamma", r1_gamma) / 2) * r1_interval
    return loss, ({"r1_penalty": penalty}, model_state)

  def g_main(params, model_state, batch, key):
    c = labels(batch)
    fake, ws = fakes(params, model_state, key, batch["image"].shape[0], c)
    fake_logits = d_logits(params, fake, c)
    loss = losses.non_saturating_g_loss(fake_logits)
    return loss, ({"fake_logits": jnp.mean(fake_logits)}, with_w_avg(model_state, ws))

  def g_pl(params, model_state, batch, key):
    n = max(batch["image"].shape[0] // PL_BATCH_SHRINK, 1)
    c = labels(batch)
    c = None if c is None else c[:n]
    z_key, ws_key, pl_key, noise_key = jax.random.split(key, 4)
    z = jax.random.normal(z_key, (n, z_dim), jnp.float32)
    ws = training_ws(generator, params["g"], ws_key, z, c, style_mixing_prob)
    variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
    synthesize = lambda ws: generator.apply(variables, ws, "random", False, method=Generator.synthesize,
                                            rngs={"noise": noise_key})
    penalty, pl_mean, lengths = path_length_penalty(synthesize, ws, pl_key, model_state["pl_mean"])
    loss = jnp.mean(penalty) * common.loss_weight(model_state, "pl_weight", pl_weight) * pl_interval
    metrics = {"pl_penalty": jnp.mean(penalty), "pl_length": jnp.mean(lengths), "pl_mean": pl_mean}
    return loss, (metrics, dict(with_w_avg(model_state, ws), pl_mean=pl_mean))

  def sample(params, model_state, key, n, label=None, truncation_psi=1.0, truncation_cutoff=None):
    """n images; label: one class for all, one per sample, or None (classes in turn); psi: truncation."""
    c = None
    if c_dim:
      label = jnp.arange(n) % c_dim if label is None else jnp.broadcast_to(jnp.asarray(label), (n,))
      c = one_hot_labels(label, c_dim)
    z_key, noise_key = jax.random.split(key)
    z = jax.random.normal(z_key, (n, z_dim), jnp.float32)
    variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
    # fused_modconv left to the backend's faster form (layers.default_fused_modconv).
    return generator.apply(variables, z, c, model_state["w_avg"], truncation_psi, truncation_cutoff, "const",
                           rngs={"noise": noise_key})

  def map_ws(params, model_state, z, label=None, truncation_psi=1.0):
    c = None
    if c_dim:
      label = jnp.arange(z.shape[0]) % c_dim if label is None else jnp.broadcast_to(jnp.asarray(label), z.shape[:1])
      c = one_hot_labels(label, c_dim)
    return generator.apply({"params": params["g"]}, z, c, model_state["w_avg"], truncation_psi, None,
                           method=Generator.map)

  def synthesize(params, model_state, ws):
    variables = {"params": params["g"], "buffers": model_state["g_buffers"]}
    return generator.apply(variables, ws, "const", method=Generator.synthesize)

  phases = [Phase("d_main", d_main, updates=("d",))]
  if r1_gamma and r1_interval:
    phases.append(Phase("d_r1", d_r1, updates=("d",), every=r1_interval))
  phases.append(Phase("g_main", g_main, updates=("g",)))
  if pl_weight and pl_interval:
    phases.append(Phase("g_pl", g_pl, updates=("g",), every=pl_interval))
  return GanVariant(init=init, phases=tuple(phases), sample=sample, modules={"g": generator, "d": discriminator},
                    conditioning=("label", "truncation_psi") if c_dim else ("truncation_psi",),
                    pictures=style_pictures(z_dim, map_ws, synthesize),
                    # run-time loss weights (vectorised sweeps may vary them), the regularisers that are on
                    hyperparameters=tuple(name for name in ("r1_gamma", "pl_weight") if model[name]))
