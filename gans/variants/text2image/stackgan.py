"""StackGAN (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked GANs"), trained
as the official StackGAN-Pytorch trainer (hanzhanggit/StackGAN-Pytorch e72ef88, code/trainer.py, miscc/utils.py).

Networks: networks.py's official CA_NET, STAGE1_G, STAGE1_D, STAGE2_G, STAGE2_D (GAN.GF_DIM = model.g_channels,
GAN.DF_DIM = model.d_channels, GAN.CONDITION_DIM = model.condition_dim, GAN.R_NUM = model.r_num, Z_DIM =
model.z_dim, TEXT.DIMENSION = model.embedding_dim). Stage-I draws model.stage1_resolution pictures (officially
64), Stage-II data.resolution ones (officially 256) from the Stage-I picture and the text.

Both stages are two parts of ONE run (one command; resuming is exact in either, the checkpoint holds both):
  steps [0, P)            "encoder": the char-CNN-RNN (model.text_encoder = "char_cnn_rnn" only; P =
                          model.pretrain_steps), exactly gan_int_cls's encoder phase (TextEncoding), then frozen;
  steps [P, P + S1)       Stage-I: "d_stage1" (group d1) then "g_stage1" (g1); S1 = model.stage1_steps;
  steps [P + S1, end)     Stage-II: "d_stage2" (d2) then "g_stage2" (g2). g1 is in no Stage-II phase, so the
                          Stage-I parameters are never updated again (the official requires_grad = False); its
                          BatchNorms stay in train mode inside STAGE2_G as the official netG.train() leaves them,
                          so their running statistics (model_state["g1"]) keep moving, as officially.
  Group g2 holds STAGE2_G's parameters without its "STAGE1_G" subtree, which is g1's, merged in at every call.
  D and G phases log as "d_main" and "g_main" in both stages (the step says which stage: P + S1 is the switch).
  The official trainer runs the stages as two programs (Stage-II loading the Stage-I netG file); one run keeps
  them in step with no path to pass, and each stage's optimizers still start fresh (their own groups).

Losses (official compute_discriminator_loss / compute_generator_loss / KL_loss), with logits and softplus, equal to
the official BCE of the sigmoid outputs: BCE(s(x), 1) = softplus(-x), BCE(s(x), 0) = softplus(x). The condition D
scores against is G's mu, gradient stopped (the official `conditions.detach()`); every term is a batch mean.
  D, Stage-I:   real + (fake + wrong) / 2, real = BCE(D(x, mu), 1), fake = BCE(D(G(z, c), mu), 0),
                wrong = BCE(D(x_i, mu_{i+1}), 0) over the first N - 1 images (the official real_features[:N-1]
                with cond[1:]: the next example's condition, no wrap-around; gan_int_cls rolls instead).
  D, Stage-II:  (real + uncond_real) / 2 + (fake + wrong + uncond_fake) / 3, the unconditional head's terms
                BCE(D_u(x), 1) and BCE(D_u(G(z, c)), 0).
  G:            BCE(D(G(z, c), mu), 1) (+ BCE(D_u(G(z, c)), 1) in Stage-II) + model.kl_coefficient (TRAIN.COEFF.KL,
                2.0) * KL_loss(mu, logvar), KL_loss = -0.5 * mean(1 + logvar - mu^2 - exp(logvar)).
  D encodes the real and the fake batch separately (each its own BatchNorm batch), then the heads run in the
  official order. The official step makes one fake batch for D and G; here D's phase and G's phase each run G
  (own z and CA noise, from the phase key), and only G's phase keeps G's BatchNorm statistics: one update per
  step as officially. Conditioning augmentation's eps is drawn from the key (the "noise" rng).
  Stage-I's real pictures are the batch's images (data.resolution) box-averaged down to model.stage1_resolution
  (officially the loader reads the dataset again at 64: 76x76 resized and randomly cropped).
Learning rates: Adam(2e-4, b1 0.5, b2 0.999) per group; the official halving every TRAIN.LR_DECAY_EPOCH epochs is
an optax piecewise-constant schedule of the group's own update count (experiments/stackgan_configs.py), so
Stage-II's schedule starts at its first step, as the official Stage-II run's epochs do.

Sampling: `sample(params, model_state, key, n, caption=None, embedding=None)` -> data.resolution pictures of
the latest trained stage (model_state["stage"]: 1 until the first Stage-II step, then 2; Stage-I pictures are
upsampled, nearest, to data.resolution), or of model.sample_stage when it is 1 or 2 (e.g. `--mode=eval
--config.model.sample_stage=1` measures Stage-I pictures). Captions and embeddings as gan_int_cls (TextEncoding).
`grid` and the picture "stages" (`--pictures=stages`): rows of 8, each a Stage-I row over its Stage-II row (same
z and caption); the grid shows the default held-out captions, "stages" the given ones in order.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gans import layers
from gans.state import GanVariant, Phase
from gans.variants import common
from gans.variants.text2image import gan_int_cls, networks

STAGE_COLUMNS = 8  # pictures per row of the grid and the "stages" picture
SAMPLE_STAGES = (0, 1, 2)  # model.sample_stage: 0 = the latest trained stage


def bce_real(logits: jax.Array) -> jax.Array:
  """The official BCELoss(sigmoid(logits), 1), a batch mean, from the logits."""
  return jnp.mean(jax.nn.softplus(-logits))


def bce_fake(logits: jax.Array) -> jax.Array:
  """The official BCELoss(sigmoid(logits), 0), a batch mean, from the logits."""
  return jnp.mean(jax.nn.softplus(logits))


def discriminator_loss(real, wrong, fake, uncond_real=None, uncond_fake=None) -> tuple[jax.Array, dict]:
  """The official compute_discriminator_loss from D's logits: the conditional head's on real + right, real +
  wrong and fake + right pairs, and the unconditional head's on real and fake where D has one (Stage-II).
  Metrics as the official summaries (D_loss_real, D_loss_wrong, D_loss_fake: real and fake averaged over the heads
  in Stage-II)."""
  real_term, wrong_term, fake_term = bce_real(real), bce_fake(wrong), bce_fake(fake)
  metrics = {"real_logits": jnp.mean(real), "wrong_logits": jnp.mean(wrong), "fake_logits": jnp.mean(fake)}
  if uncond_real is None:
    loss = real_term + (fake_term + wrong_term) * 0.5
  else:
    uncond_real_term, uncond_fake_term = bce_real(uncond_real), bce_fake(uncond_fake)
    loss = (real_term + uncond_real_term) / 2.0 + (fake_term + wrong_term + uncond_fake_term) / 3.0
    real_term, fake_term = (real_term + uncond_real_term) / 2.0, (fake_term + uncond_fake_term) / 2.0
  return loss, {**metrics, "real": real_term, "wrong": wrong_term, "fake": fake_term}


def generator_loss(fake, uncond_fake, mu, logvar, kl_coefficient) -> tuple[jax.Array, dict]:
  """The official compute_generator_loss (+ the unconditional term where D has it) + COEFF.KL * KL_loss."""
  adversarial = bce_real(fake) + (0.0 if uncond_fake is None else bce_real(uncond_fake))
  kl = networks.kl_loss(mu, logvar)
  return adversarial + kl_coefficient * kl, {"adversarial": adversarial, "kl": kl, "fake_logits": jnp.mean(fake)}


def check_config(config) -> int:
  """The Stage-II / Stage-I size factor; refuses sizes and settings the networks cannot take."""
  model, data_config = config.model, config.data
  if data_config.channels != 3:
    raise ValueError(f"StackGAN's generators draw RGB pictures: set data.channels=3 (got {data_config.channels}).")
  if model.sample_stage not in SAMPLE_STAGES:
    raise ValueError(f"model.sample_stage must be 0 (the latest trained stage), 1 or 2; got {model.sample_stage}.")
  final, first = data_config.resolution, model.stage1_resolution
  networks.doublings(final, "data.resolution (Stage-II's picture side)")
  networks.doublings(first, "model.stage1_resolution")
  if final < 2 * first:
    raise ValueError(f"Stage-II refines Stage-I to a larger picture: data.resolution ({final}) must be at least "
                     f"twice model.stage1_resolution ({first}), e.g. 256 and 64 as the paper.")
  return final // first


def make(config) -> GanVariant:
  model = config.model
  factor = check_config(config)
  shape = common.data_shape(config.data)
  encoding = gan_int_cls.text_encoding(config, shape)
  start = encoding.pretrain_steps
  switch = start + model.stage1_steps
  resolution, stage1_resolution = config.data.resolution, model.stage1_resolution
  stage1_g = networks.Stage1G(model.g_channels, model.condition_dim, image_size=stage1_resolution)
  stage1_d = networks.Stage1D(model.d_channels, model.condition_dim, image_size=stage1_resolution)
  stage2_g = networks.Stage2G(model.g_channels, model.condition_dim, model.r_num, stage1_size=stage1_resolution,
                              image_size=resolution)
  stage2_d = networks.Stage2D(model.d_channels, model.condition_dim, image_size=resolution)
  latents = common.latent_sampler(model)

  def noise(key, n):
    """(z, the CA noise rngs) of one G pass."""
    z_key, eps_key = jax.random.split(key)
    return latents(z_key, n, model.z_dim), {networks.NOISE_RNG: eps_key}

  def generate_stage1(params, model_state, key, embedding, train=True):
    """((stage-1 picture, mu, logvar), new model_state["g1"])."""
    z, rngs = noise(key, embedding.shape[0])
    (_, image, mu, logvar), g1 = common.apply_module(stage1_g, params["g1"], model_state["g1"], embedding, z,
                                                     train=train, rngs=rngs)
    return (image, mu, logvar), g1

  def generate_stage2(params, model_state, key, embedding, train=True):
    """((stage-1 picture, stage-2 picture, mu, logvar), new model_state["g1"], new model_state["g2"]): STAGE2_G
    with g1's parameters and statistics as its STAGE1_G."""
    z, rngs = noise(key, embedding.shape[0])
    g_params = {**params["g2"], "STAGE1_G": params["g1"]}
    stats = {"batch_stats": {**model_state["g2"]["batch_stats"], "STAGE1_G": model_state["g1"]["batch_stats"]}}
    outputs, stats = common.apply_module(stage2_g, g_params, stats, embedding, z, train=train, rngs=rngs)
    stage2_stats = dict(stats["batch_stats"])
    stage1_stats = stage2_stats.pop("STAGE1_G")
    return outputs, {"batch_stats": stage1_stats}, {"batch_stats": stage2_stats}

  def d_apply(module, d_params, collections, method, *args):
    return common.apply_module(module, d_params, collections, *args, train=True, method=method)

  def d_terms(module, d_params, collections, real, fake, condition):
    """The official D forward order: encode real, encode fake, then the heads; returns (logits, collections)."""
    real_h, collections = d_apply(module, d_params, collections, "encode", real)
    fake_h, collections = d_apply(module, d_params, collections, "encode", fake)
    logits = {}
    logits["real"], collections = d_apply(module, d_params, collections, "cond_logits", real_h, condition)
    logits["wrong"], collections = d_apply(module, d_params, collections, "cond_logits", real_h[:-1], condition[1:])
    logits["fake"], collections = d_apply(module, d_params, collections, "cond_logits", fake_h, condition)
    if module.unconditional:
      logits["uncond_real"], collections = d_apply(module, d_params, collections, "uncond_logits", real_h)
      logits["uncond_fake"], collections = d_apply(module, d_params, collections, "uncond_logits", fake_h)
    return logits, collections

  def g_terms(module, d_params, collections, fake, condition):
    fake_h, collections = d_apply(module, d_params, collections, "encode", fake)
    fake_logits, collections = d_apply(module, d_params, collections, "cond_logits", fake_h, condition)
    uncond = d_apply(module, d_params, collections, "uncond_logits", fake_h)[0] if module.unconditional else None
    return fake_logits, uncond

  kl_coefficient = lambda model_state: common.loss_weight(model_state, "kl_coefficient", model.kl_coefficient)

  def prepare(params, model_state, batch, key, due):
    """Once per GAN step: the captions' embeddings and the training stage's G forward pass with its VJP (Stage-II's
    runs the frozen Stage-I G inside); D learns on its pictures and G through them (Prepared.replay), as the
    official iteration. Encoder steps read the batch as is."""
    if "g_stage1" in due:
      group = "g1"
      def forward(g1):
        (fake, mu, logvar), g1_stats = generate_stage1({"g1": g1}, model_state, key, embedding)
        return (fake, mu, logvar), {"g1": g1_stats}
    elif "g_stage2" in due:
      group = "g2"
      def forward(g2):
        (_, fake, mu, logvar), g1_stats, g2_stats = generate_stage2({"g1": params["g1"], "g2": g2}, model_state,
                                                                    key, embedding)
        return (fake, mu, logvar), {"g1": g1_stats, "g2": g2_stats}
    else:
      return batch
    embedding = encoding.embed(params, batch)
    return {**batch, "generated": common.forward_once(forward, params[group])}

  def d_stage1(params, model_state, batch, key):
    del key
    fake, mu, _ = batch["generated"].outputs
    real = layers.downsample_box(batch["image"], factor)  # the Stage-I view of a Stage-II-sized picture
    logits, d1 = d_terms(stage1_d, params["d1"], model_state["d1"], real, fake, mu)
    loss, metrics = discriminator_loss(logits["real"], logits["wrong"], logits["fake"])
    return loss, (metrics, {**model_state, "d1": d1})

  def g_stage1(params, model_state, batch, key):
    del key
    fake, mu, logvar = batch["generated"].replay(params["g1"])
    fake_logits, _ = g_terms(stage1_d, params["d1"], model_state["d1"], fake, jax.lax.stop_gradient(mu))
    loss, metrics = generator_loss(fake_logits, None, mu, logvar, kl_coefficient(model_state))
    # G's statistics advance once per step, with the prepared forward pass.
    return loss, (metrics, {**model_state, **batch["generated"].aux})

  def d_stage2(params, model_state, batch, key):
    del key
    fake, mu, _ = batch["generated"].outputs
    logits, d2 = d_terms(stage2_d, params["d2"], model_state["d2"], batch["image"], fake, mu)
    loss, metrics = discriminator_loss(logits["real"], logits["wrong"], logits["fake"], logits["uncond_real"],
                                       logits["uncond_fake"])
    return loss, (metrics, {**model_state, "d2": d2, "stage": jnp.int32(2)})

  def g_stage2(params, model_state, batch, key):
    del key
    fake, mu, logvar = batch["generated"].replay(params["g2"])
    fake_logits, uncond = g_terms(stage2_d, params["d2"], model_state["d2"], fake, jax.lax.stop_gradient(mu))
    loss, metrics = generator_loss(fake_logits, uncond, mu, logvar, kl_coefficient(model_state))
    return loss, (metrics, {**model_state, **batch["generated"].aux, "stage": jnp.int32(2)})

  def both_stages(params, model_state, key, embedding):
    """(stage-1 pictures upsampled to data.resolution, stage-2 pictures), BatchNorm in eval mode."""
    (stage1, stage2, _, _), _, _ = generate_stage2(params, model_state, key, embedding, train=False)
    return layers.upsample_nearest(stage1, factor), stage2

  def sample(params, model_state, key, n, caption=None, embedding=None):
    stage1, stage2 = both_stages(params, model_state, key, encoding.conditioning_embedding(params, n, caption,
                                                                                          embedding))
    if model.sample_stage:
      return stage1 if model.sample_stage == 1 else stage2
    return jnp.where(model_state["stage"] == 2, stage2, stage1)

  def stage_rows(params, model_state, key, embedding):
    """Rows of STAGE_COLUMNS: for each run of that many embeddings, the Stage-I row, then the Stage-II row."""
    n = embedding.shape[0]
    stage1, stage2 = both_stages(params, model_state, key, embedding)
    rows = -(-n // STAGE_COLUMNS)
    pad = rows * STAGE_COLUMNS - n

    def laid_out(x):
      x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
      return x.reshape((rows, STAGE_COLUMNS) + x.shape[1:])
    return jnp.stack([laid_out(stage1), laid_out(stage2)], axis=1).reshape((2 * rows, STAGE_COLUMNS) + shape)

  def stages(params, model_state, key, caption=None, embedding=None):
    given = caption if caption is not None else embedding
    n = STAGE_COLUMNS if given is None or np.ndim(given) == 1 else len(given)
    return stage_rows(params, model_state, key, encoding.conditioning_embedding(params, n, caption, embedding))

  grid_rows = gan_int_cls.DEFAULT_CAPTIONS // 2

  def grid(params, model_state, key):
    """Half the default captions, one per pair of rows, the same latents along each row."""
    embedding = jnp.repeat(encoding.conditioning_embedding(params, grid_rows, None, None), STAGE_COLUMNS, axis=0)
    return stage_rows(params, model_state, key, embedding)

  def init(key):
    g1_key, d1_key, g2_key, d2_key, text_key, image_key = jax.random.split(key, 6)
    embedding, z = jnp.zeros((1, model.embedding_dim)), jnp.zeros((1, model.z_dim))
    eps = jnp.zeros((1, model.condition_dim))
    g1, g1_stats = common.init_module(stage1_g, g1_key, embedding, z, eps=eps)
    d1, d1_stats = common.init_module(stage1_d, d1_key, jnp.zeros((1, stage1_resolution, stage1_resolution, 3)), eps)
    g2, g2_stats = common.init_module(stage2_g, g2_key, embedding, z, eps=eps, stage1_eps=eps)
    d2, d2_stats = common.init_module(stage2_d, d2_key, jnp.zeros((1,) + shape), eps)
    g2 = {name: value for name, value in g2.items() if name != "STAGE1_G"}
    g2_stats = {"batch_stats": {name: value for name, value in g2_stats["batch_stats"].items() if name != "STAGE1_G"}}
    params = {"g1": g1, "d1": d1, "g2": g2, "d2": d2, **encoding.init(text_key, image_key)}
    model_state = {"g1": g1_stats, "d1": d1_stats, "g2": g2_stats, "d2": d2_stats, "stage": jnp.int32(1)}
    return params, model_state

  phases = encoding.phases + (
      Phase("d_stage1", d_stage1, updates=("d1",), start=start, stop=switch, log_as="d_main"),
      Phase("g_stage1", g_stage1, updates=("g1",), start=start, stop=switch, log_as="g_main"),
      Phase("d_stage2", d_stage2, updates=("d2",), start=switch, log_as="d_main"),
      Phase("g_stage2", g_stage2, updates=("g2",), start=switch, log_as="g_main"))
  modules = {"g1": stage1_g, "d1": stage1_d, "g2": stage2_g, "d2": stage2_d, **encoding.modules}
  return GanVariant(init=init, phases=phases, sample=sample, ema_groups=("g1", "g2"), modules=modules,
                    conditioning=("caption", "embedding"), grid=grid if encoding.reads_captions else None,
                    pictures={"stages": stages}, hyperparameters=("kl_coefficient",), prepare=prepare)
