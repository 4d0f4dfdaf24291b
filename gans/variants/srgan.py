"""SRResNet and SRGAN (Ledig et al. 2017): 4x single-image super-resolution.

Generator SRResNet (the paper's Fig. 4): 9x9 conv (64) + PReLU; B residual blocks (3x3 conv, batch norm,
PReLU, 3x3 conv, batch norm, + input); 3x3 conv + batch norm + the long skip from the first PReLU; two x2
sub-pixel stages (3x3 conv to 4x the width, pixel shuffle, PReLU); 9x9 conv to RGB, no output activation.
`model.blocks` (16 in the paper) and `model.features` (64) are configurable. PReLU has one slope per
channel (He et al. 2015), initialised to 0.25 as PyTorch's. Convolutions followed by batch norm have no bias:
the norm's mean subtraction cancels it (its gradient is zero, and Adam would turn rounding noise in that zero
into full-size steps).

Discriminator (Fig. 4): eight 3x3 convs with 64, 64, 128, 128, 256, 256, 512, 512 channels (times
model.d_features / 64) and strides 1, 2, 1, 2, ...; batch norm on all but the first; LeakyReLU 0.2;
dense 1024, LeakyReLU 0.2, dense 1 (a logit: the sigmoid is in the loss).

Data: a batch {"image": HR f32[N, R, R, 3] in [-1, 1]} and, where the source has its own low-resolution
images (DIV2K's bicubic_x4), {"lr": f32[N, R/4, R/4, 3] in [0, 1]}; otherwise the LR input is the HR
image downscaled here (gans/data/super_resolution.downscale). G maps LR in [0, 1] to SR in [-1, 1].

`model.objective`:
  srresnet  the content loss only, no discriminator (the paper's SRResNet rows; MSE = SRResNet-MSE).
  srgan     content + 1e-3 (model.adversarial_weight) * the non-saturating adversarial loss
            -log D(G(LR)); D minimises the binary cross-entropy of real HR and generated SR.
            With model.pretrain_steps > 0 the run is the paper's two stages as two phases of one run:
            "g_pretrain" trains G as SRResNet with the MSE for the first pretrain_steps steps, then
            "d_main" and "g_main" train SRGAN from that G (the same "g" optimizer goes on).
`model.content` (Table 1's rows): "mse" (pixel MSE in [-1, 1]), "vgg22", "vgg54" (gans/metrics/vgg19.py:
the rescaled VGG19 feature maps' MSE; model.vgg_weights is torchvision's vgg19-dcbccbbe.pth).

Sampling: `sample(..., source=LR images in [0, 1])`, fully convolutional; held_out(n) gives the data's
held-out pairs {"source": LR, "target": HR} (gans/data/super_resolution.py).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gans import layers
from gans.data import super_resolution as sr_data
from gans.metrics import vgg19
from gans.state import GanVariant, Phase
from gans.variants import common

OBJECTIVES = ("srresnet", "srgan")
CONTENTS = ("mse", "vgg22", "vgg54")
VGG_LAYERS = {"vgg22": "2_2", "vgg54": "5_4"}
SCALE = 4  # two x2 sub-pixel stages
BN = dict(momentum=0.9, epsilon=1e-5)  # PyTorch's BatchNorm2d defaults


def pixel_shuffle(x_NHWC: jax.Array, r: int) -> jax.Array:
  """PyTorch's PixelShuffle(r) in NHWC: out[n, h*r + i, w*r + j, c] = x[n, h, w, c*r*r + i*r + j]."""
  n, h, w, c = x_NHWC.shape
  out_c = c // (r * r)
  x = x_NHWC.reshape(n, h, w, out_c, r, r)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, out_c)


class PReLU(nn.Module):
  """max(0, x) + a * min(0, x) with one learned slope a per channel."""
  init_slope: float = 0.25

  @nn.compact
  def __call__(self, x):
    slope = self.param("slope", nn.initializers.constant(self.init_slope), (x.shape[-1],))
    return jnp.where(x >= 0, x, slope.astype(x.dtype) * x)


def _conv(features: int, kernel: int, stride: int = 1, dtype=jnp.float32, use_bias: bool = True):
  # gans.layers: PyTorch's symmetric padding, gradients without XLA:CPU's slow input-dilated convolutions.
  return layers.Conv(features, kernel, strides=stride, padding=kernel // 2, dtype=dtype, use_bias=use_bias)


class SRResNet(nn.Module):
  blocks: int = 16
  features: int = 64
  channels: int = 3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, lr_NHWC, train: bool = False):
    norm = lambda: nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **BN)
    conv_bn = lambda x: norm()(_conv(self.features, 3, dtype=self.dtype, use_bias=False)(x))
    x = PReLU()(_conv(self.features, 9, dtype=self.dtype)(lr_NHWC.astype(self.dtype)))
    skip = x
    for _ in range(self.blocks):
      x = x + conv_bn(PReLU()(conv_bn(x)))
    x = skip + conv_bn(x)
    for _ in range(2):
      x = PReLU()(pixel_shuffle(_conv(self.features * 4, 3, dtype=self.dtype)(x), 2))
    return _conv(self.channels, 9, dtype=self.dtype)(x).astype(jnp.float32)


class Discriminator(nn.Module):
  features: int = 64
  dense: int = 1024
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_NHWC, train: bool = False):
    x = x_NHWC.astype(self.dtype)
    for i in range(8):
      x = _conv(self.features * 2 ** (i // 2), 3, stride=1 + i % 2, dtype=self.dtype, use_bias=not i)(x)
      if i:
        x = nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **BN)(x)
      x = nn.leaky_relu(x, 0.2)
    x = nn.leaky_relu(nn.Dense(self.dense, dtype=self.dtype)(x.reshape(x.shape[0], -1)), 0.2)
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)


def check_choice(name: str, value: str, valid) -> None:
  if value not in valid:
    raise ValueError(f"Unknown model.{name} {value!r}; valid: {', '.join(valid)}.")


def mse(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(x - y))


def content_loss_fn(content: str, vgg_params=None):
  """content(sr, hr) -> scalar, images in [-1, 1]."""
  if content == "mse":
    return mse
  layer = VGG_LAYERS[content]
  return lambda sr, hr: vgg19.content_loss(vgg_params, sr, hr, layer)


def low_resolution(batch) -> jax.Array:
  """The batch's LR inputs in [0, 1]: the source's own, else its HR images downscaled x4."""
  return batch["lr"] if "lr" in batch else sr_data.downscale(batch["image"], SCALE)


def bicubic_grid(sample, held_out, rows: int = 4):
  """grid(params, model_state, key) -> images[rows, bicubic upsampling of LR | SR | HR] in [-1, 1]."""
  def grid(params, model_state, key):
    examples = held_out(rows)
    source = jnp.asarray(examples["source"])
    target = jnp.asarray(examples["target"])
    columns = [sr_data.upsample_bicubic(source, target.shape[1:3]) * 2.0 - 1.0,
               jnp.clip(sample(params, model_state, key, source.shape[0], source=source), -1.0, 1.0), target]
    return jnp.stack(columns, axis=1)
  return grid


def make(config) -> GanVariant:
  model, data_config = config.model, config.data
  check_choice("objective", model.objective, OBJECTIVES)
  check_choice("content", model.content, CONTENTS)
  dtype = common.compute_dtype(model)
  channels, crop = data_config.channels, data_config.resolution
  if crop % SCALE:
    raise ValueError(f"data.resolution={crop} (the HR crop) must be a multiple of {SCALE}.")
  adversarial = model.objective == "srgan"
  pretrain_steps = model.get("pretrain_steps", 0) if adversarial else 0
  generator = SRResNet(model.blocks, model.features, channels, dtype)
  discriminator = Discriminator(model.d_features, model.d_dense, dtype)
  vgg_params = None
  if model.content in VGG_LAYERS:  # read once here; model_state carries it (no large constants in the program)
    vgg_params = vgg19.load_params(model.vgg_weights, VGG_LAYERS[model.content])

  def init(key):
    g_key, d_key = jax.random.split(key)
    g_params, g_collections = common.init_module(generator, g_key, jnp.zeros((1, crop // SCALE, crop // SCALE,
                                                                              channels)))
    params, model_state = {"g": g_params}, {"g": g_collections}
    if adversarial:
      params["d"], model_state["d"] = common.init_module(discriminator, d_key, jnp.zeros((1, crop, crop, channels)))
    if vgg_params is not None:
      model_state["vgg"] = jax.tree.map(jnp.asarray, vgg_params)
    return params, model_state

  def content_of(model_state):
    return content_loss_fn(model.content, model_state.get("vgg"))

  def super_resolve(params, model_state, lr, train):
    return common.apply_module(generator, params["g"], model_state["g"], lr, train=train)

  def discriminate(params, d_collections, x):
    return common.apply_module(discriminator, params["d"], d_collections, x, train=True)

  def prepare(params, model_state, batch, key, due):
    """G(LR) once per step with its VJP: D learns on it, G (pretraining or SRGAN) through it (Prepared.replay)."""
    del key, due  # every phase reads G(LR)
    sr = common.forward_once(lambda g_params: super_resolve({"g": g_params}, model_state, low_resolution(batch), True),
                             params["g"])
    return {"image": batch["image"], "sr": sr}

  def pretrain_loss(params, model_state, batch, key):
    del key
    loss = mse(batch["sr"].replay(params["g"]), batch["image"])
    return loss, ({"mse": loss}, {**model_state, "g": batch["sr"].aux})

  def d_loss(params, model_state, batch, key):
    del key
    hr = batch["image"]
    real_logits, d_collections = discriminate(params, model_state["d"], hr)
    fake_logits, d_collections = discriminate(params, d_collections, batch["sr"].outputs)
    real_loss = jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits)))
    fake_loss = jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits)))
    metrics = {"real": real_loss, "fake": fake_loss, "real_logits": jnp.mean(real_logits),
               "fake_logits": jnp.mean(fake_logits)}
    return real_loss + fake_loss, (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    del key
    hr, sr = batch["image"], batch["sr"].replay(params["g"])
    content = content_of(model_state)(sr, hr)
    metrics, loss = {"content": content}, content
    if adversarial:
      logits, _ = discriminate(params, model_state["d"], sr)
      metrics["adversarial"] = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.ones_like(logits)))
      loss = loss + common.loss_weight(model_state, "adversarial_weight", model.adversarial_weight) * \
          metrics["adversarial"]
    # G's batch statistics advance once per step, with the one G forward pass.
    return loss, (metrics, {**model_state, "g": batch["sr"].aux})

  def sample(params, model_state, key, n, source=None):
    del key
    if source is None:
      raise ValueError("SRResNet/SRGAN upscale inputs: sample(..., source=LR images[n, h, w, C] in [0, 1]) "
                       "(--mode=sample takes the held-out images, or --input=DIR).")
    source = jnp.broadcast_to(source, (n,) + source.shape[-3:])
    outputs, _ = super_resolve(params, model_state, source, False)
    return outputs

  phases = ()
  if pretrain_steps:
    phases += (Phase("g_pretrain", pretrain_loss, updates=("g",), stop=pretrain_steps),)
  if adversarial:
    phases += (Phase("d_main", d_loss, updates=("d",), start=pretrain_steps),)
  phases += (Phase("g_main", g_loss, updates=("g",), start=pretrain_steps),)
  held_out = sr_data.held_out_loader(data_config)
  return GanVariant(
      init=init,
      phases=phases,
      sample=sample,
      modules={"g": generator, "d": discriminator},
      conditioning=("source",),
      grid=bicubic_grid(sample, held_out),
      held_out=held_out,
      hyperparameters=("adversarial_weight",) if adversarial else (),
      prepare=prepare,
  )
