"""Conditional GAN (Mirza & Osindero 2014), with the projection discriminator (Miyato & Koyama 2018) as an option.

Both networks receive the class label. G reads `concat(z, one_hot(y))`, as in
the paper. D either reads the label concatenated to its input
(`model.conditioning = "concat"`: to the flattened input of the MLP form, as
extra constant channels of the image for the convolutional form), or projects
it (`"projection"`): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, where phi is
D's trunk.

`model.architecture` picks the form: "mlp" (the paper's fully connected nets:
ReLU G, maxout D; the paper's dropout is left out) or "conv" (the DCGAN
networks of `dcgan.py`).

Fake examples in a step take the labels of the step's real batch, so D sees the
same class frequencies on both sides and no extra randomness enters the step.
Sampling: `sample(..., label=K)` draws class K (an int or one label per
sample); without `label`, sample i is class `i % num_classes`. `grid` draws one
row per class with one latent per column, so a column shows one "style" across
the classes.
"""
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gans import losses
from gans.state import GanVariant, Phase
from gans.variants import common, dcgan, gan

_init = nn.initializers.normal(0.02)
CONDITIONINGS = ("concat", "projection")
ARCHITECTURES = ("mlp", "conv")


def one_hot(label, num_classes: int) -> jax.Array:
  return jax.nn.one_hot(label, num_classes, dtype=jnp.float32)


def concat_label(x: jax.Array, label_onehot: jax.Array) -> jax.Array:
  """Appends a one-hot label to each example: as features of a vector, as constant channels of an NHWC image."""
  if x.ndim == 2:
    return jnp.concatenate([x, label_onehot], axis=-1)
  planes = jnp.broadcast_to(label_onehot[:, None, None, :], x.shape[:-1] + label_onehot.shape[-1:])
  return jnp.concatenate([x, planes], axis=-1)


def labels_for(label, n: int, num_classes: int) -> jax.Array:
  """The n labels to sample: `label` broadcast (int or per-sample array), or 0, 1, ..., K-1, 0, ... when None."""
  if label is None:
    return jnp.arange(n, dtype=jnp.int32) % num_classes
  return jnp.broadcast_to(jnp.asarray(label, jnp.int32), (n,))


class ConditionalGenerator(nn.Module):
  """An unconditional generator fed concat(z, one_hot(label))."""
  body: nn.Module  # the unconditional generator, called as body(z', train=...)
  num_classes: int  # label values 0..num_classes-1

  @nn.compact
  def __call__(self, z, label, train: bool):
    return self.body(jnp.concatenate([z, one_hot(label, self.num_classes)], axis=-1), train=train)


class ConvTrunk(nn.Module):
  """DCGAN's discriminator without its last conv: NHWC image -> flattened 4x4 feature map.

  DCGAN's final 4x4 valid conv on a 4x4 map is a dense layer on this flattening,
  so a dense head on these features is exactly the DCGAN discriminator.
  """
  base_channels: int = 64  # channels of the first conv; doubled at every halving (ndf)
  dtype: Any = jnp.float32  # computation dtype (config.model.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    h = x_NHWC
    for level in range(dcgan._num_doublings(x_NHWC.shape[1])):
      h = dcgan.down_conv(self.base_channels * 2 ** level, dtype=self.dtype)(h)
      if level > 0:
        h = dcgan._batch_norm(train, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    return h.reshape(h.shape[0], -1)


class MLPTrunk(nn.Module):
  """The paper's maxout hidden layers (or LeakyReLU(0.2) with maxout_pieces=1) on flattened inputs."""
  hidden: tuple[int, ...] = (240, 240)  # width of each hidden layer
  maxout_pieces: int = 5  # linear pieces per maxout unit; 1 = LeakyReLU layers
  dtype: Any = jnp.float32  # computation dtype (config.model.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train  # no batch norm
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = gan.Maxout(width, self.maxout_pieces, dtype=self.dtype)(h) if self.maxout_pieces > 1 else nn.leaky_relu(
          nn.Dense(width, kernel_init=_init, dtype=self.dtype)(h), 0.2)
    return h


class ConditionalDiscriminator(nn.Module):
  """D(x, y) -> one logit per example, the label entering by concatenation or by projection."""
  trunk: nn.Module  # x -> features (N, F)
  num_classes: int  # label values 0..num_classes-1
  conditioning: str = "concat"  # "concat" (Mirza & Osindero) or "projection" (Miyato & Koyama)

  @nn.compact
  def __call__(self, x, label, train: bool):
    if self.conditioning not in CONDITIONINGS:
      raise ValueError(f"Unknown conditioning {self.conditioning!r}; valid: {', '.join(CONDITIONINGS)}.")
    if self.conditioning == "concat":
      # The MLP form flattens before concatenating, so the label adds K inputs rather than K image planes.
      x = x.reshape(x.shape[0], -1) if isinstance(self.trunk, MLPTrunk) else x
      features = self.trunk(concat_label(x, one_hot(label, self.num_classes)), train=train)
      return nn.Dense(1, kernel_init=_init, dtype=features.dtype)(features)[:, 0].astype(jnp.float32)
    # The trunk's computation dtype carries on into the head; the logits leave in float32 for the losses.
    features = self.trunk(x, train=train)
    embedding = nn.Embed(self.num_classes, features.shape[-1], embedding_init=_init)(label)
    head = nn.Dense(1, kernel_init=_init, dtype=features.dtype)(features)[:, 0].astype(jnp.float32)
    return head + jnp.sum(embedding * features.astype(jnp.float32), axis=-1)


def make_modules(config) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.model.architecture and .conditioning."""
  model = config.model
  shape = common.data_shape(config.data)
  if model.architecture not in ARCHITECTURES:
    raise ValueError(f"Unknown architecture {model.architecture!r}; valid: {', '.join(ARCHITECTURES)}.")
  dtype = common.compute_dtype(model)
  if model.architecture == "conv":
    body = dcgan.Generator(resolution=shape[0], channels=shape[-1], base_channels=model.g_channels, dtype=dtype)
    trunk = ConvTrunk(base_channels=model.d_channels, dtype=dtype)
  else:
    body = gan.MLPGenerator(output_shape=shape, hidden=tuple(model.g_hidden), batch_norm=model.g_batch_norm,
                            tanh_output=len(shape) == 3, dtype=dtype)
    trunk = MLPTrunk(hidden=tuple(model.d_hidden), maxout_pieces=model.d_maxout_pieces, dtype=dtype)
  generator = ConditionalGenerator(body=body, num_classes=model.num_classes)
  discriminator = ConditionalDiscriminator(trunk=trunk, num_classes=model.num_classes,
                                           conditioning=model.conditioning)
  return generator, discriminator


def conditional_phases(generator: nn.Module, discriminator: nn.Module, model_config,
                       n_critic: int = 1) -> tuple[Phase, ...]:
  """The D and G phases of a label-conditioned GAN: `common.standard_training`'s phases with y beside x and z."""
  adversarial = losses.get_adversarial_loss(model_config.loss)
  z_dim = model_config.z_dim

  def generate(params, model_state, key, label):
    z = common.gaussian_latents(key, label.shape[0], z_dim)
    return common.apply_module(generator, params["g"], model_state["g"], z, label, train=True)

  def discriminate(params, d_collections, x, label):
    return common.apply_module(discriminator, params["d"], d_collections, x, label, train=True)

  def d_loss(params, model_state, batch, key):
    real, label = common.real_data(batch), batch["label"]
    # G's BatchNorm statistics advance in the G phase only, as in common.standard_training with n_critic > 1.
    fake, _ = generate(params, model_state, key, label)
    real_logits, d_collections = discriminate(params, model_state["d"], real, label)
    fake_logits, d_collections = discriminate(params, d_collections, fake, label)
    metrics = losses.logit_metrics(real_logits, fake_logits)
    return adversarial.d(real_logits, fake_logits), (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    label = batch["label"]
    fake, g_collections = generate(params, model_state, key, label)
    fake_logits, _ = discriminate(params, model_state["d"], fake, label)
    return adversarial.g(fake_logits), ({"fake_logits": jnp.mean(fake_logits)}, {**model_state, "g": g_collections})

  return (Phase("d_main", d_loss, updates=("d",), repeats=n_critic),
          Phase("g_main", g_loss, updates=("g",)))


def make_sampler(generator: nn.Module, z_dim: int, num_classes: int) -> Callable:
  """sample(params, model_state, key, n, label=None) -> n examples of the given class(es), BatchNorm in eval mode."""
  def sample(params, model_state, key, n, label=None):
    z = common.gaussian_latents(key, n, z_dim)
    outputs, _ = common.apply_module(generator, params["g"], model_state["g"], z,
                                     labels_for(label, n, num_classes), train=False)
    return outputs
  return sample


def make_grid(generator: nn.Module, z_dim: int, num_classes: int, columns: int) -> Callable:
  """grid(params, model_state, key) -> f32[num_classes, columns, ...]: row k is class k, column j latent z_j."""
  def grid(params, model_state, key):
    z = jnp.tile(common.gaussian_latents(key, columns, z_dim), (num_classes, 1))
    labels = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), columns)
    outputs, _ = common.apply_module(generator, params["g"], model_state["g"], z, labels, train=False)
    return outputs.reshape((num_classes, columns) + outputs.shape[1:])
  return grid


def make_init(generator: nn.Module, discriminator: nn.Module, z_dim: int, example_shape: tuple[int, ...]):
  def init(key):
    g_key, d_key = jax.random.split(key)
    label = jnp.zeros((1,), jnp.int32)
    g_params, g_collections = common.init_module(generator, g_key, jnp.zeros((1, z_dim)), label)
    d_params, d_collections = common.init_module(discriminator, d_key, jnp.zeros((1,) + tuple(example_shape)), label)
    return {"g": g_params, "d": d_params}, {"g": g_collections, "d": d_collections}
  return init


def make(config) -> GanVariant:
  model = config.model
  generator, discriminator = make_modules(config)
  columns = max(1, config.train.num_grid_samples // model.num_classes)
  return GanVariant(
      init=make_init(generator, discriminator, model.z_dim, common.data_shape(config.data)),
      phases=conditional_phases(generator, discriminator, model, config.train.get("n_critic", 1)),
      sample=make_sampler(generator, model.z_dim, model.num_classes),
      modules={"g": generator, "d": discriminator},
      conditioning=("label",),
      grid=make_grid(generator, model.z_dim, model.num_classes, columns),
  )


# --- Evaluation: does a sample of class k look like class k to a classifier trained on real data? ---

def label_accuracy(generate: Callable, classify: Callable, num_classes: int, num_samples: int) -> dict:
  """Fraction of samples generated for label k that `classify` assigns to k, per class and overall.

  generate(n, label=k) -> n samples of class k; classify(images) -> predicted int labels.
  The samples are split evenly over the classes, so "overall" is the mean of the per-class values.
  """
  per_class = max(1, num_samples // num_classes)
  hits = [np.mean(np.asarray(classify(generate(per_class, label=k))) == k) for k in range(num_classes)]
  results = {f"label_accuracy/{k}": float(hit) for k, hit in enumerate(hits)}
  results["label_accuracy"] = float(np.mean(hits))
  return results
