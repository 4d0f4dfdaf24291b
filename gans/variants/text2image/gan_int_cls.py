"""GAN-INT-CLS (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis"), with its text encoder.

Networks (the paper's Fig. 2, DCGAN at data.resolution, 64x64 in the paper):
  G: phi(t) -> Dense(model.projection_dim, 128 in the paper) + LeakyReLU(0.2), concatenated after z (model.z_dim,
     100) and fed to dcgan.Generator (a 4x4 map of g_channels * 2^k channels, transposed convs, BN, ReLU, tanh).
  D: dcgan's strided 4x4 convs (LeakyReLU 0.2, BN after the first) down to 4x4; there the projected embedding
     (its own Dense + LeakyReLU(0.2)) is replicated spatially and concatenated after the features, then a 1x1
     conv (d_channels * 2^k channels, BN, LeakyReLU 0.2) and a 4x4 valid conv give one logit.
  The convolutions are gans.layers' fast CPU forms (through dcgan.up_conv / down_conv).

Objectives (config.model.objective; the paper's four), with s = sigmoid(D(image, embedding)) and logits:
  gan          D: real image + its caption real, G(z, h) + h fake:  softplus(-D(x, h)) + softplus(D(G(z, h), h)).
  gan-cls      the matching-aware D of Algorithm 1: real + right text real; real + wrong text and fake + right
               text fake, each fake term weighted 1/2:
               softplus(-D(x, h)) + (softplus(D(x, h_wrong)) + softplus(D(G(z, h), h))) / 2.
  gan-int      gan, and G also learns from the interpolation h_int = beta * h + (1 - beta) * h_other of two
               captions' embeddings, beta = 0.5 (model.interpolation_beta): G's loss is
               softplus(-D(G(z, h), h)) + softplus(-D(G(z', h_int), h_int)). D never sees h_int (it has no real
               image for it), as in the paper.
  gan-int-cls  both (the default).
  G's adversarial terms are the non-saturating -log s, as the paper's code. Every term is a mean over the batch.

Wrong and other captions: the batch rolled by one (example i takes example i-1's caption, i.e. the embedding of
the previous example; jnp.roll over the global batch, so the pairs do not depend on the device count). The
pipeline shuffles the pairs every epoch, so the neighbour is a random other example. On captioned_shapes a rolled
caption can describe the same picture content by chance; that needs the same count, kinds, colours, sizes and
cells: for one-shape pictures 1 in 5 * 5 * 3 * 9 = 675 (and rarer for two), so about 0.1% of the "wrong" pairs
are in fact right. Filtering them would need the attribute labels, which are for evaluation only, so they are
kept: a 0.1% label noise on one of D's three terms (the paper's CUB batches have the same: a bird of the same
species described alike). Two examples of one picture with two of its captions in one batch are rarer still.

Text encoder (config.model.text_encoder):
  "precomputed"    the batch's "embedding" (caption_folder with data.embedding_file: the released char-CNN-RNN
                   sentence embeddings, 1024-d); model.embedding_dim must match them.
  "char_cnn_rnn"   the project's own, trained on the captions with the structured joint embedding objective of
                   Reed et al. 2016b ("Learning deep representations of fine-grained visual descriptions"): an
                   image encoder phi and a text encoder psi, compatibility F(v, t) = phi(v) . psi(t), and the
                   symmetric loss over the batch (`joint_embedding_loss`: the softmax form; the paper's hinge
                   collapsed, see there), each example its own class (captioned shapes have no classes that may
                   be trained on). psi is the paper's
                   char-CNN-RNN shrunk: one-hot characters, two [conv1d k4 + ReLU + maxpool 2] layers
                   (model.text_channels), a GRU (model.text_hidden) whose outputs are averaged over the caption's
                   characters (the paper averages the RNN's hidden units over time), a Dense to
                   model.embedding_dim. phi: DCGAN-style strided convs to 4x4, a Dense to embedding_dim.
                   It trains in the same run, before the GAN: the "encoder" phase updates groups "text" and
                   "image_encoder" for the first model.pretrain_steps steps; d_main and g_main start after it and
                   read the text encoder through stop_gradient, and no later phase updates it: frozen during GAN
                   training, as the paper's pretrained encoder. One command trains both; the checkpoint holds the
                   encoder beside G, so --mode=sample encodes typed captions with exactly the encoder G learnt
                   with, and resuming is exact in either stage (a separate encoder experiment would need a second
                   command and a checkpoint path kept in step with the GAN's).
  Quality, measured (experiments/gan_int_cls_shapes.py, benchmarks/text_encoder_retrieval.py): after 400 steps,
  held-out recall@1 among 300 caption/picture pairs 0.34 (image->text) and 0.45 (text->image), chance 0.003.

Sampling: `sample(params, model_state, key, n, caption=None, embedding=None)`: caption = int32[L] or [n, L]
character ids (captions.encode_caption), embedding = f32[E] or [n, E] (precomputed encoders; an embedding given
wins over a caption). With "precomputed", `--mode=sample --caption=...` looks the typed caption up among the
dataset's captions and samples from its released embedding (gans/sampling.py released_embeddings; any other
caption is refused, since the released Torch7 encoder cannot run here); `--embeddings=FILE.npy` gives them
directly. Without either,
the captions of held-out captioned shapes (data.synth_seed + 1) when the encoder reads captions, else a zero
embedding (with precomputed embeddings the training pictures then show G's response to a neutral condition).
`grid`: one row per default caption, one latent per column. Pictures: "interpolation": rows of latents, columns
the embedding moving from the first caption given to the last (or between two default captions).
"""
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gans.data import captions as caption_data
from gans.state import GanVariant, Phase
from gans.variants import common, dcgan

_init = nn.initializers.normal(0.02)
OBJECTIVES = ("gan", "gan-cls", "gan-int", "gan-int-cls")
TEXT_ENCODERS = ("precomputed", "char_cnn_rnn")
VOCABULARY = len(caption_data.ALPHABET) + 1  # character ids 1..len(ALPHABET), 0 = padding
DEFAULT_CAPTIONS = 8  # rows of the training grid
INTERPOLATION_STEPS = 8  # columns of the interpolation picture


def project(embedding: jax.Array, features: int, dtype=jnp.float32) -> jax.Array:
  """The paper's learned projection of the sentence embedding: Dense + LeakyReLU(0.2)."""
  return nn.leaky_relu(nn.Dense(features, kernel_init=_init, dtype=dtype)(embedding), 0.2)


class TextGenerator(nn.Module):
  """G(z, embedding): z concatenated with the projected embedding, into the DCGAN generator."""
  resolution: int
  channels: int
  base_channels: int = 64
  projection_dim: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, embedding, train: bool):
    condition = project(embedding, self.projection_dim, self.dtype)
    body = dcgan.Generator(self.resolution, self.channels, self.base_channels, self.dtype, name="body")
    return body(jnp.concatenate([z, condition.astype(z.dtype)], axis=-1), train=train)


class TextDiscriminator(nn.Module):
  """D(image, embedding) -> one logit per example; the projected embedding joins the features at 4x4."""
  base_channels: int = 64
  projection_dim: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_NHWC, embedding, train: bool):
    doublings = dcgan._num_doublings(x_NHWC.shape[1])
    h = x_NHWC
    for level in range(doublings):
      h = dcgan.down_conv(self.base_channels * 2 ** level, dtype=self.dtype)(h)
      if level > 0:
        h = dcgan._batch_norm(train, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    condition = project(embedding, self.projection_dim, self.dtype).astype(h.dtype)
    h = jnp.concatenate([h, jnp.broadcast_to(condition[:, None, None, :], h.shape[:3] + condition.shape[-1:])], -1)
    h = nn.Conv(h.shape[-1] - condition.shape[-1], (1, 1), use_bias=False, kernel_init=_init, dtype=self.dtype)(h)
    h = nn.leaky_relu(dcgan._batch_norm(train, self.dtype)(h), 0.2)
    logits = nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=_init, dtype=self.dtype)(h)
    return logits.reshape(-1).astype(jnp.float32)


class CharCnnRnn(nn.Module):
  """psi(t): the char-CNN-RNN text encoder, shrunk (see the module docstring). ids int32[N, L] -> f32[N, E]."""
  embedding_dim: int = 128
  channels: int = 64
  hidden: int = 128

  @nn.compact
  def __call__(self, ids):
    mask = (ids != caption_data.PADDING).astype(jnp.float32)
    h = jax.nn.one_hot(ids, VOCABULARY)
    for _ in range(2):
      h = nn.relu(nn.Conv(self.channels, (4,), padding="SAME")(h))
      h = nn.max_pool(h, (2,), strides=(2,))
      mask = nn.max_pool(mask[..., None], (2,), strides=(2,))[..., 0]  # a pooled step is a character if any was
    outputs = nn.RNN(nn.GRUCell(self.hidden))(h)
    mean = jnp.sum(outputs * mask[..., None], axis=1) / jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1.0)
    return nn.Dense(self.embedding_dim)(mean)


class ImageEncoder(nn.Module):
  """phi(v): strided 4x4 convs with LeakyReLU(0.2) down to 4x4, then a Dense to the joint space."""
  embedding_dim: int = 128
  channels: int = 32

  @nn.compact
  def __call__(self, x_NHWC):
    h = x_NHWC
    for level in range(dcgan._num_doublings(x_NHWC.shape[1])):
      h = nn.leaky_relu(dcgan.down_conv(self.channels * 2 ** level, use_bias=True)(h), 0.2)
    return nn.Dense(self.embedding_dim)(h.reshape(h.shape[0], -1))


def joint_embedding_loss(image_features: jax.Array, text_features: jax.Array) -> jax.Array:
  """Reed et al. 2016b's symmetric joint embedding objective, each batch example its own class, in its smooth form.

  F = phi(v) psi(t)^T (F[i, j] = F(v_i, t_j)). The image side classifies each image among the batch's texts by
  F, the text side each text among the images, and the loss is the sum of the two sides' softmax cross-entropies:
    loss = mean_i [logsumexp_j F_ij - F_ii] + mean_j [logsumexp_i F_ij - F_jj].
  The paper's surrogate is the structured hinge max_j (Delta_ij + F_ij) - F_ii (Delta = 1 - [i == j]); with one
  class per example it collapsed here: both encoders' outputs went to ~0, the loss sat at 2.0000 (1 per side) and
  held-out retrieval stayed at chance after 1000 steps (gan_int_cls_shapes, batch 64). logsumexp is the smooth
  maximum of the same scores (without the margin), and learns (the measurements in gan_int_cls_shapes).
  """
  scores = image_features @ text_features.T
  right = jnp.diagonal(scores)
  image_side = jax.nn.logsumexp(scores, axis=1) - right
  text_side = jax.nn.logsumexp(scores, axis=0) - right
  return jnp.mean(image_side) + jnp.mean(text_side)


def wrong(x: jax.Array) -> jax.Array:
  """Another example's value for each example: the batch rolled by one (see the module docstring)."""
  return jnp.roll(x, 1, axis=0)


def interpolate(embedding: jax.Array, other: jax.Array, beta: float) -> jax.Array:
  return beta * embedding + (1.0 - beta) * other


def discriminator_loss(objective: str, real_right, real_wrong, fake_right) -> tuple[jax.Array, dict]:
  """D's loss from its logits (each [N]); real_wrong is read only by the matching-aware objectives."""
  real_term = jnp.mean(jax.nn.softplus(-real_right))
  fake_term = jnp.mean(jax.nn.softplus(fake_right))
  metrics = {"real_logits": jnp.mean(real_right), "fake_logits": jnp.mean(fake_right)}
  if objective.endswith("cls"):
    wrong_term = jnp.mean(jax.nn.softplus(real_wrong))
    metrics["wrong_logits"] = jnp.mean(real_wrong)
    return real_term + 0.5 * (wrong_term + fake_term), metrics
  return real_term + fake_term, metrics


def generator_loss(objective: str, fake_right, fake_interpolated) -> tuple[jax.Array, dict]:
  """G's non-saturating loss on fake + right text, plus the interpolation term for the -int objectives."""
  loss = jnp.mean(jax.nn.softplus(-fake_right))
  metrics = {"fake_logits": jnp.mean(fake_right)}
  if objective.startswith("gan-int"):
    metrics["interpolated_logits"] = jnp.mean(fake_interpolated)
    loss += jnp.mean(jax.nn.softplus(-fake_interpolated))
  return loss, metrics


def check_model(model) -> None:
  if model.objective not in OBJECTIVES:
    raise ValueError(f"Unknown model.objective {model.objective!r}; valid: {', '.join(OBJECTIVES)}.")
  check_text_encoder(model)


def check_text_encoder(model) -> None:
  if model.text_encoder not in TEXT_ENCODERS:
    raise ValueError(f"Unknown model.text_encoder {model.text_encoder!r}; valid: {', '.join(TEXT_ENCODERS)}.")


def default_captions(data_config, count: int = DEFAULT_CAPTIONS) -> np.ndarray:
  """int32[count, L]: caption 0 of the first `count` held-out captioned shapes (data.synth_seed + 1)."""
  source = caption_data.CaptionedShapesSource(
      resolution=8, channels=3, size=count, captions_per_picture=1, caption_length=data_config.caption_length,
      max_shapes=data_config.get("max_shapes", 2), seed=data_config.synth_seed + 1)
  return np.stack([caption_data.encode_caption(source.caption(p, 0), data_config.caption_length)
                   for p in range(count)])


class TextEncoding(NamedTuple):
  """Where a text-conditional variant's sentence embeddings come from (config.model.text_encoder), shared by
  gan_int_cls and stackgan: the precomputed embeddings of the batch, or the char-CNN-RNN trained first in the
  "encoder" phase (groups "text" and "image_encoder") and frozen after it. See the module docstring."""
  reads_captions: bool  # char_cnn_rnn: the embeddings are the trained encoder's of the batch's "caption"
  pretrain_steps: int  # steps of the "encoder" phase before the GAN's phases (0 for precomputed embeddings)
  phases: tuple  # the "encoder" phase, or ()
  modules: dict  # {"text": CharCnnRnn, "image_encoder": ImageEncoder}, or {}
  init: Callable  # init(text_key, image_key) -> the encoder groups' params ({} for precomputed embeddings)
  embed: Callable  # embed(params, batch) -> f32[N, E], the encoder frozen (stop_gradient)
  # conditioning_embedding(params, n, caption, embedding) -> f32[n, E]: the sampler's keywords (caption ids or
  # embeddings, one or one per sample), else the default captions (cycled), else a zero embedding.
  conditioning_embedding: Callable
  defaults: np.ndarray | None  # int32[DEFAULT_CAPTIONS, L], the grid's captions (char_cnn_rnn only)


def text_encoding(config, image_shape) -> TextEncoding:
  """The text encoder of config.model (text_encoder, embedding_dim; char_cnn_rnn: text_channels, text_hidden,
  image_encoder_channels, pretrain_steps) for images of `image_shape` (H, W, C)."""
  model, length = config.model, config.data.caption_length
  check_text_encoder(model)
  reads_captions = model.text_encoder == "char_cnn_rnn"
  pretrain_steps = model.get("pretrain_steps", 0) if reads_captions else 0
  text_encoder = CharCnnRnn(model.embedding_dim, model.text_channels, model.text_hidden)
  image_encoder = ImageEncoder(model.embedding_dim, model.image_encoder_channels)

  def encode_text(params, caption):
    return text_encoder.apply({"params": params["text"]}, caption)

  def embed(params, batch):
    """The batch's sentence embeddings; the trained encoder is frozen here (stop_gradient)."""
    if not reads_captions:
      if "embedding" not in batch:
        raise ValueError("model.text_encoder='precomputed' reads the batch's \"embedding\": use source "
                         "caption_folder with data.embedding_file set, or model.text_encoder='char_cnn_rnn'.")
      return batch["embedding"]
    return jax.lax.stop_gradient(encode_text(params, batch["caption"]))

  def encoder_loss(params, model_state, batch, key):
    del key
    text = encode_text(params, batch["caption"])
    image = image_encoder.apply({"params": params["image_encoder"]}, batch["image"])
    scores = image @ text.T
    metrics = {"retrieval_accuracy": jnp.mean(jnp.argmax(scores, axis=1) == jnp.arange(scores.shape[0]))}
    return joint_embedding_loss(image, text), (metrics, model_state)

  defaults = default_captions(config.data) if reads_captions else None

  def conditioning_embedding(params, n, caption, embedding):
    """f32[n, E] from the given caption ids or embeddings, else the defaults (cycled)."""
    if embedding is not None:
      return jnp.broadcast_to(jnp.asarray(embedding, jnp.float32), (n, model.embedding_dim))
    if reads_captions:
      ids = defaults[np.arange(n) % len(defaults)] if caption is None else jnp.broadcast_to(
          jnp.asarray(caption, jnp.int32), (n, length))
      return encode_text(params, ids)
    if caption is not None:
      raise ValueError("model.text_encoder='precomputed' cannot read captions; pass embeddings instead "
                       "(--mode=sample finds a typed caption's released embedding: sampling.released_embeddings).")
    return jnp.zeros((n, model.embedding_dim))

  def init(text_key, image_key):
    if not reads_captions:
      return {}
    return {"text": text_encoder.init(text_key, jnp.zeros((1, length), jnp.int32))["params"],
            "image_encoder": image_encoder.init(image_key, jnp.zeros((1,) + tuple(image_shape)))["params"]}

  phases = ((Phase("encoder", encoder_loss, updates=("text", "image_encoder"), stop=pretrain_steps),)
            if pretrain_steps else ())
  modules = {"text": text_encoder, "image_encoder": image_encoder} if reads_captions else {}
  return TextEncoding(reads_captions, pretrain_steps, phases, modules, init, embed, conditioning_embedding,
                      defaults)


def make(config) -> GanVariant:
  model, data_config = config.model, config.data
  check_model(model)
  if config.train.get("n_critic", 1) != 1:
    raise ValueError("gan_int_cls updates D once per G update (Reed et al.'s Algorithm 1) on the step's one batch "
                     f"of fakes; set config.train.n_critic=1 (got {config.train.n_critic}).")
  shape = common.data_shape(data_config)
  dtype = common.compute_dtype(model)
  objective, beta = model.objective, model.get("interpolation_beta", 0.5)
  encoding = text_encoding(config, shape)
  reads_captions, pretrain_steps = encoding.reads_captions, encoding.pretrain_steps
  embed, conditioning_embedding, defaults = encoding.embed, encoding.conditioning_embedding, encoding.defaults
  generator = TextGenerator(shape[0], shape[-1], model.g_channels, model.projection_dim, dtype)
  discriminator = TextDiscriminator(model.d_channels, model.projection_dim, dtype)
  latents = common.latent_sampler(model)

  def generate(params, model_state, key, embedding, train=True):
    z = latents(key, embedding.shape[0], model.z_dim)
    return common.apply_module(generator, params["g"], model_state["g"], z, embedding, train=train)

  def discriminate(params, d_collections, x, embedding):
    return common.apply_module(discriminator, params["d"], d_collections, x, embedding, train=True)

  def prepare(params, model_state, batch, key, due):
    """Once per GAN step: the captions' embeddings (the frozen encoder) and G(z, h) with its VJP; D learns on these
    fakes and G through them (Prepared.replay), as the reference's iteration. Encoder steps read the batch as is."""
    if "g_main" not in due:
      return batch
    embedding = embed(params, batch)
    fake = common.forward_once(lambda g_params: generate({"g": g_params}, model_state, key, embedding), params["g"])
    return {**batch, "sentence_embedding": embedding, "fake": fake}

  def d_loss(params, model_state, batch, key):
    del key
    real, embedding = batch["image"], batch["sentence_embedding"]
    real_right, d_collections = discriminate(params, model_state["d"], real, embedding)
    real_wrong = None
    if objective.endswith("cls"):
      real_wrong, d_collections = discriminate(params, d_collections, real, wrong(embedding))
    fake_right, d_collections = discriminate(params, d_collections, batch["fake"].outputs, embedding)
    loss, metrics = discriminator_loss(objective, real_right, real_wrong, fake_right)
    return loss, (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    embedding, g_collections = batch["sentence_embedding"], batch["fake"].aux
    fake = batch["fake"].replay(params["g"])
    fake_right, _ = discriminate(params, model_state["d"], fake, embedding)
    fake_interpolated = None
    if objective.startswith("gan-int"):
      mixed = interpolate(embedding, wrong(embedding), beta)
      fake_mixed, g_collections = generate(params, {**model_state, "g": g_collections}, key, mixed)
      fake_interpolated, _ = discriminate(params, model_state["d"], fake_mixed, mixed)
    loss, metrics = generator_loss(objective, fake_right, fake_interpolated)
    # G's batch statistics advance with its forward passes of the step: the prepared one, then the interpolation's.
    return loss, (metrics, {**model_state, "g": g_collections})

  def sample(params, model_state, key, n, caption=None, embedding=None):
    outputs, _ = generate(params, model_state, key, conditioning_embedding(params, n, caption, embedding), False)
    return outputs

  rows = len(defaults) if reads_captions else 1
  columns = max(1, config.train.num_grid_samples // rows)

  def grid(params, model_state, key):
    embedding = jnp.repeat(conditioning_embedding(params, rows, None, None), columns, axis=0)
    z = jnp.tile(latents(key, columns, model.z_dim), (rows, 1))
    outputs, _ = common.apply_module(generator, params["g"], model_state["g"], z, embedding, train=False)
    return outputs.reshape((rows, columns) + outputs.shape[1:])

  def interpolation(params, model_state, key, caption=None, embedding=None):
    """Rows: latents; columns: beta from 1 to 0 between the first and the last caption given (or defaults 0, 1)."""
    given = caption if caption is not None else embedding
    if given is not None and np.ndim(given) == 1:
      raise ValueError("The interpolation picture needs two captions: give --caption twice (or a file of two).")
    ends = conditioning_embedding(params, 2, None, None) if given is None else (
        conditioning_embedding(params, len(given), caption, embedding)[jnp.array([0, -1])])
    betas = jnp.linspace(1.0, 0.0, INTERPOLATION_STEPS)
    path = interpolate(ends[0][None], ends[1][None], betas[:, None])
    latent_rows = max(1, config.train.num_grid_samples // INTERPOLATION_STEPS // 2)
    z = jnp.repeat(latents(key, latent_rows, model.z_dim), INTERPOLATION_STEPS, axis=0)
    outputs, _ = common.apply_module(generator, params["g"], model_state["g"], z, jnp.tile(path, (latent_rows, 1)),
                                     train=False)
    return outputs.reshape((latent_rows, INTERPOLATION_STEPS) + outputs.shape[1:])

  def init(key):
    g_key, d_key, text_key, image_key = jax.random.split(key, 4)
    embedding = jnp.zeros((1, model.embedding_dim))
    g_params, g_collections = common.init_module(generator, g_key, jnp.zeros((1, model.z_dim)), embedding)
    d_params, d_collections = common.init_module(discriminator, d_key, jnp.zeros((1,) + shape), embedding)
    params = {"g": g_params, "d": d_params, **encoding.init(text_key, image_key)}
    return params, {"g": g_collections, "d": d_collections}

  phases = encoding.phases + (
      Phase("d_main", d_loss, updates=("d",), start=pretrain_steps),
      Phase("g_main", g_loss, updates=("g",), start=pretrain_steps))
  modules = {"g": generator, "d": discriminator, **encoding.modules}
  return GanVariant(init=init, phases=phases, sample=sample, modules=modules,
                    conditioning=("caption", "embedding"), grid=grid if reads_captions else None,
                    pictures={"interpolation": interpolation}, prepare=prepare)
