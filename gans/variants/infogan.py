"""InfoGAN (Chen et al. 2016): latent codes made interpretable by a mutual-information bonus.

G reads concat(z, one_hot(c), c_cont): noise z ~ U(-1, 1), a categorical code
c ~ Cat(K) and continuous codes c_cont ~ U(-1, 1). A Q head on D's trunk
predicts the codes of a generated image: softmax logits for c and a
unit-variance Gaussian mean for each c_cont (the fixed-std choice of the
reference implementation). The variational lower bound on I(c; G(z, c)),

    L_I = E[log Q(c | x)] + H(c) + E[log Q(c_cont | x)] + H(c_cont),

weighted by lambda, is subtracted from the G and Q losses: min over G, Q of
V(D, G) - lambda L_I.

Networks (the paper's MNIST ones, widths scaled by g_channels = d_channels = 64):
G: FC 1024 BN ReLU, FC (R/4)^2 x 128 BN ReLU, upconv 64 BN ReLU, upconv C tanh.
D trunk: conv 64 lReLU, conv 128 BN lReLU, FC 1024 BN lReLU (leak 0.1);
D head: FC 1; Q head: FC 128 BN lReLU, FC K + n_cont.

Parameter groups and how the shared trunk learns the MI term. "d" holds the
trunk and the D head, "q" the Q head. The G phase updates ("g", "q") with the
non-saturating G loss - lambda L_I, as the paper trains Q with G. The trunk,
which the paper shares between D and Q, is only in "d", so with
`model.mi_through_trunk` (the default) the D phase adds - lambda L_I on the
same fakes too: the trunk then learns features Q can read the codes from, as
the reference implementation does by putting the MI term in both losses. With
it off, Q reads codes from features trained for D alone.

Training reads no labels. `sample(..., code=K)` fixes the categorical code;
`grid` varies it by row and the first continuous code over [-2, 2] by column
(the paper's Figure 2 range, beyond the [-1, 1] prior), everything else fixed.
`encode` gives Q's code predictions on data, which `code_accuracy` scores
against true labels under the best one-to-one matching of codes to classes.
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from gans import losses
from gans.state import GanVariant, Phase
from gans.variants import common, dcgan

_init = nn.initializers.normal(0.02)
_LEAK = 0.1  # the paper's leaky ReLU slope


def _batch_norm(train: bool):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


class Generator(nn.Module):
  resolution: int  # output height and width, a multiple of 4
  channels: int  # output image channels
  base_channels: int = 64  # channels of the last hidden layer; the paper's widths are 16x, 2x and 1x this

  @nn.compact
  def __call__(self, latent, train: bool):
    if self.resolution % 4:
      raise ValueError(f"InfoGAN's generator needs a resolution divisible by 4, got {self.resolution}.")
    side, width = self.resolution // 4, 2 * self.base_channels
    h = nn.relu(_batch_norm(train)(nn.Dense(16 * self.base_channels, use_bias=False, kernel_init=_init)(latent)))
    h = nn.Dense(side * side * width, use_bias=False, kernel_init=_init)(h)
    h = nn.relu(_batch_norm(train)(h)).reshape(latent.shape[0], side, side, width)
    h = nn.relu(_batch_norm(train)(dcgan.up_conv(self.base_channels, use_bias=False)(h)))
    return jnp.tanh(dcgan.up_conv(self.channels, use_bias=True)(h))


class Discriminator(nn.Module):
  """x -> (logit, trunk features); the features are what the Q head reads."""
  base_channels: int = 64  # channels of the first conv; the paper's widths are 1x, 2x and 16x this

  @nn.compact
  def __call__(self, x_NHWC, train: bool):
    h = nn.leaky_relu(dcgan.down_conv(self.base_channels, use_bias=True)(x_NHWC), _LEAK)
    h = dcgan.down_conv(2 * self.base_channels)(h)
    h = nn.leaky_relu(_batch_norm(train)(h), _LEAK).reshape(x_NHWC.shape[0], -1)
    features = nn.Dense(16 * self.base_channels, use_bias=False, kernel_init=_init)(h)
    features = nn.leaky_relu(_batch_norm(train)(features), _LEAK)
    return nn.Dense(1, kernel_init=_init)(features)[:, 0], features


class QHead(nn.Module):
  """Trunk features -> (categorical code logits [N, K], continuous code means [N, n_cont])."""
  num_categories: int  # K, the categorical code's values
  num_continuous: int  # continuous codes, each modelled as N(mean, 1)
  hidden: int = 128  # width of the hidden layer

  @nn.compact
  def __call__(self, features, train: bool):
    h = nn.Dense(self.hidden, use_bias=False, kernel_init=_init)(features)
    h = nn.leaky_relu(_batch_norm(train)(h), _LEAK)
    out = nn.Dense(self.num_categories + self.num_continuous, kernel_init=_init)(h)
    return out[:, :self.num_categories], out[:, self.num_categories:]


# --- Latents and the mutual-information bound ---

def sample_codes(key: jax.Array, n: int, num_categories: int, num_continuous: int, code=None):
  """(categorical codes int32[n], continuous codes f32[n, n_cont]) from the prior; `code` fixes the first."""
  cat_key, cont_key = jax.random.split(key)
  if code is None:
    categorical = jax.random.randint(cat_key, (n,), 0, num_categories, dtype=jnp.int32)
  else:
    categorical = jnp.broadcast_to(jnp.asarray(code, jnp.int32), (n,))
  continuous = jax.random.uniform(cont_key, (n, num_continuous), minval=-1.0, maxval=1.0)
  return categorical, continuous


def generator_input(z: jax.Array, categorical: jax.Array, continuous: jax.Array, num_categories: int):
  return jnp.concatenate([z, jax.nn.one_hot(categorical, num_categories), continuous], axis=-1)


def mutual_information_bounds(cat_logits, cont_mean, categorical, continuous) -> tuple[jax.Array, jax.Array]:
  """Batch estimates of the lower bounds on I(c; x) and I(c_cont; x), in nats.

  Categorical: E[log softmax(logits)[c]] + log K (the entropy of the uniform prior).
  Continuous: sum over codes of E[log N(c; mean, 1)] + log 2 (the entropy of U(-1, 1)).
  """
  num_categories = cat_logits.shape[-1]
  log_q_cat = jnp.take_along_axis(jax.nn.log_softmax(cat_logits), categorical[:, None], axis=-1)[:, 0]
  mi_cat = jnp.mean(log_q_cat) + jnp.log(num_categories)
  log_q_cont = -0.5 * jnp.square(continuous - cont_mean) - 0.5 * jnp.log(2.0 * jnp.pi)
  mi_cont = jnp.mean(jnp.sum(log_q_cont, axis=-1)) + continuous.shape[-1] * jnp.log(2.0)
  return mi_cat, mi_cont


# --- Phases ---

def infogan_phases(generator: Generator, discriminator: Discriminator, q_head: QHead, model_config,
                   n_critic: int = 1) -> tuple[Phase, ...]:
  """The D phase (updates "d") and the G phase (updates "g" and "q"), both with - lambda L_I."""
  adversarial = losses.get_adversarial_loss(model_config.loss)
  num_categories, num_continuous = model_config.num_categories, model_config.num_continuous
  z_dim = model_config.z_dim
  weight_cat, weight_cont = model_config.mi_weight_categorical, model_config.mi_weight_continuous
  mi_through_trunk = model_config.mi_through_trunk

  def generate(params, model_state, key, n):
    z_key, code_key = jax.random.split(key)
    z = jax.random.uniform(z_key, (n, z_dim), minval=-1.0, maxval=1.0)
    categorical, continuous = sample_codes(code_key, n, num_categories, num_continuous)
    latent = generator_input(z, categorical, continuous, num_categories)
    fake, g_collections = common.apply_module(generator, params["g"], model_state["g"], latent, train=True)
    return fake, g_collections, categorical, continuous

  def mi_terms(params, q_collections, features, categorical, continuous):
    """(- lambda L_I, metrics, Q's updated collections) for fakes with these codes."""
    (cat_logits, cont_mean), q_collections = common.apply_module(q_head, params["q"], q_collections, features,
                                                                  train=True)
    mi_cat, mi_cont = mutual_information_bounds(cat_logits, cont_mean, categorical, continuous)
    metrics = {"mi_categorical": mi_cat, "mi_continuous": mi_cont,
               "q_code_accuracy": jnp.mean(jnp.argmax(cat_logits, axis=-1) == categorical)}
    return -(weight_cat * mi_cat + weight_cont * mi_cont), metrics, q_collections

  def d_loss(params, model_state, batch, key):
    real = common.real_data(batch)
    # G's BatchNorm statistics advance once per step, in the G phase, as in common.standard_training with n_critic > 1.
    fake, _, categorical, continuous = generate(params, model_state, key, real.shape[0])
    (real_logits, _), d_collections = common.apply_module(discriminator, params["d"], model_state["d"], real,
                                                          train=True)
    (fake_logits, features), d_collections = common.apply_module(discriminator, params["d"], d_collections, fake,
                                                                 train=True)
    loss = adversarial.d(real_logits, fake_logits)
    metrics = losses.logit_metrics(real_logits, fake_logits)
    if mi_through_trunk:
      # Q's statistics advance in the G phase only; here the term only trains the shared trunk.
      mi_loss, mi_metrics, _ = mi_terms(params, model_state["q"], features, categorical, continuous)
      loss += mi_loss
      metrics.update(mi_metrics)
    return loss, (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    fake, g_collections, categorical, continuous = generate(params, model_state, key,
                                                            common.real_data(batch).shape[0])
    (fake_logits, features), _ = common.apply_module(discriminator, params["d"], model_state["d"], fake, train=True)
    mi_loss, metrics, q_collections = mi_terms(params, model_state["q"], features, categorical, continuous)
    metrics["fake_logits"] = jnp.mean(fake_logits)
    return (adversarial.g(fake_logits) + mi_loss,
            (metrics, {**model_state, "g": g_collections, "q": q_collections}))

  return (Phase("d_main", d_loss, updates=("d",), repeats=n_critic),
          Phase("g_main", g_loss, updates=("g", "q")))


# --- Sampling, grid, encoder ---

def make_sampler(generator: Generator, model_config) -> Callable:
  """sample(params, model_state, key, n, code=None) -> n images; `code` fixes the categorical code."""
  def sample(params, model_state, key, n, code=None):
    z_key, code_key = jax.random.split(key)
    z = jax.random.uniform(z_key, (n, model_config.z_dim), minval=-1.0, maxval=1.0)
    categorical, continuous = sample_codes(code_key, n, model_config.num_categories, model_config.num_continuous,
                                           code)
    latent = generator_input(z, categorical, continuous, model_config.num_categories)
    return common.apply_module(generator, params["g"], model_state["g"], latent, train=False)[0]
  return sample


def grid_codes(num_categories: int, num_continuous: int, columns: int, extent: float = 2.0):
  """(categorical int32[K * columns], continuous f32[K * columns, n_cont]) of the grid, row-major:
  row k has code k; column j sets the first continuous code to the j-th of `columns` points in [-extent, extent]."""
  categorical = jnp.repeat(jnp.arange(num_categories, dtype=jnp.int32), columns)
  varied = jnp.tile(jnp.linspace(-extent, extent, columns), num_categories)
  continuous = jnp.zeros((num_categories * columns, num_continuous)).at[:, 0].set(varied)
  return categorical, continuous


def make_grid(generator: Generator, model_config, columns: int) -> Callable:
  """grid(params, model_state, key) -> images[K, columns, ...] from one noise vector z."""
  num_categories = model_config.num_categories

  def grid(params, model_state, key):
    categorical, continuous = grid_codes(num_categories, model_config.num_continuous, columns)
    z = jnp.broadcast_to(jax.random.uniform(key, (1, model_config.z_dim), minval=-1.0, maxval=1.0),
                         (categorical.shape[0], model_config.z_dim))
    latent = generator_input(z, categorical, continuous, num_categories)
    images = common.apply_module(generator, params["g"], model_state["g"], latent, train=False)[0]
    return images.reshape((num_categories, columns) + images.shape[1:])
  return grid


def make_encoder(discriminator: Discriminator, q_head: QHead) -> Callable:
  """encode(params, model_state, batch) -> {"code_logits": [N, K], "continuous": [N, n_cont]}, BatchNorm in eval."""
  def encode(params, model_state, batch):
    (_, features), _ = common.apply_module(discriminator, params["d"], model_state["d"], common.real_data(batch),
                                           train=False)
    (cat_logits, cont_mean), _ = common.apply_module(q_head, params["q"], model_state["q"], features, train=False)
    return {"code_logits": cat_logits, "continuous": cont_mean}
  return encode


def make_init(generator: Generator, discriminator: Discriminator, q_head: QHead, latent_dim: int,
              example_shape: tuple[int, ...]):
  def init(key):
    g_key, d_key, q_key = jax.random.split(key, 3)
    g_params, g_collections = common.init_module(generator, g_key, jnp.zeros((1, latent_dim)))
    example = jnp.zeros((1,) + tuple(example_shape))
    d_params, d_collections = common.init_module(discriminator, d_key, example)
    features = jax.eval_shape(lambda: discriminator.apply({"params": d_params, **d_collections}, example,
                                                          train=False)[1])
    q_params, q_collections = common.init_module(q_head, q_key, jnp.zeros(features.shape))
    return ({"g": g_params, "d": d_params, "q": q_params},
            {"g": g_collections, "d": d_collections, "q": q_collections})
  return init


def make(config) -> GanVariant:
  model = config.model
  shape = common.data_shape(config.data)
  generator = Generator(resolution=shape[0], channels=shape[-1], base_channels=model.g_channels)
  discriminator = Discriminator(base_channels=model.d_channels)
  q_head = QHead(num_categories=model.num_categories, num_continuous=model.num_continuous,
                 hidden=2 * model.d_channels)
  latent_dim = model.z_dim + model.num_categories + model.num_continuous
  columns = max(2, config.train.num_grid_samples // model.num_categories)
  return GanVariant(
      init=make_init(generator, discriminator, q_head, latent_dim, shape),
      phases=infogan_phases(generator, discriminator, q_head, model, config.train.get("n_critic", 1)),
      sample=make_sampler(generator, model),
      modules={"g": generator, "d": discriminator, "q": q_head},
      conditioning=("code",),
      grid=make_grid(generator, model, columns),
      encode=make_encoder(discriminator, q_head),
  )


# --- Evaluation: the categorical code as an unsupervised classifier ---

def matched_accuracy(codes: np.ndarray, labels: np.ndarray, num_codes: int, num_classes: int) -> tuple[float, dict]:
  """Accuracy of `codes` as predictions of `labels` under the best one-to-one code -> class matching.

  Returns (accuracy, {code: class}); the matching maximises agreements (Hungarian algorithm), so
  relabelling the codes never changes the accuracy. Codes left unmatched (num_codes > num_classes) count
  as errors.
  """
  agreements = np.zeros((num_codes, num_classes), np.int64)
  np.add.at(agreements, (np.asarray(codes), np.asarray(labels)), 1)
  code_index, class_index = scipy.optimize.linear_sum_assignment(agreements, maximize=True)
  accuracy = agreements[code_index, class_index].sum() / max(len(codes), 1)
  return float(accuracy), {int(c): int(k) for c, k in zip(code_index, class_index)}


def code_accuracy(encode: Callable, images: np.ndarray, labels: np.ndarray, num_codes: int, num_classes: int,
                  batch_size: int = 500) -> dict:
  """Q's categorical code on real labelled images, scored by `matched_accuracy`.

  encode(batch) -> {"code_logits": ...}, e.g. the variant's encoder bound to trained params.
  """
  codes = np.concatenate([np.argmax(np.asarray(encode({"image": images[start:start + batch_size]})["code_logits"]),
                                    axis=-1) for start in range(0, len(images), batch_size)])
  accuracy, mapping = matched_accuracy(codes, labels, num_codes, num_classes)
  return {"code_accuracy": accuracy, "code_to_class": [mapping.get(code, -1) for code in range(num_codes)]}


def generated_code_accuracy(generate: Callable, classify: Callable, num_codes: int, num_classes: int,
                            num_samples: int) -> dict:
  """How consistently each categorical code draws one class: samples generated with code k are classified
  by a classifier of real data, and the codes matched one-to-one to classes as in `matched_accuracy`.

  generate(n, code=k) -> n samples; classify(images) -> predicted int labels.
  """
  per_code = max(1, num_samples // num_codes)
  codes = np.repeat(np.arange(num_codes), per_code)
  predicted = np.concatenate([np.asarray(classify(generate(per_code, code=k))) for k in range(num_codes)])
  accuracy, _ = matched_accuracy(codes, predicted, num_codes, num_classes)
  return {"generated_code_accuracy": accuracy}
