"""pix2pix (Isola et al. 2017): paired translation A -> B with a conditional PatchGAN, exact to the official code.

Objective (models/pix2pix_model.py): G = U-Net with dropout as its noise and batch norm; D = the 70x70
PatchGAN on the input and output concatenated along channels (conditional), vanilla (BCE-with-logits) GAN
loss; D's loss halved, 0.5 * (GAN(D(A, G(A)), fake) + GAN(D(A, B), real)); G's loss GAN(D(A, G(A)), real) +
lambda_L1 (100) * L1(G(A), B). D is updated before G, each once per step, both on one G(A): `prepare`
jitters the pair and runs G once per step, D learns on its output and G through it (`common.forward_once`), as the
official iteration. Adam 2e-4, beta1 0.5, the linear decay (config.optim.*.schedule).

`model.objective` selects the rows of the paper's Table 1: "l1" (no D at all), "gan" (D sees only the
output), "cgan" (D sees input and output), "l1+gan", "l1+cgan" (the default and the paper's method).

Test time (`sample`, `--mode=sample`, the translation metrics): as the paper and the official test.py
default, G stays in train mode: dropout on (fresh noise per call) and batch norm with the statistics of the
test batch. `model.test_mode = "eval"` is the official --eval: running statistics, no dropout.
"""
import jax
import jax.numpy as jnp

from gans.data import image2image as image2image_data
from gans.state import GanVariant, Phase
from gans.variants import common
from gans.variants.image2image import networks, training

OBJECTIVES = ("l1", "gan", "cgan", "l1+gan", "l1+cgan")
TEST_MODES = ("train", "eval")
GRID_ROWS = 8


def check_choice(name: str, value: str, valid) -> None:
  if value not in valid:
    raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}.")


def held_out_loader(data_config):
  """held_out(n) reading the data's held-out pairs once (at the first call, so a run whose data is absent can
  still be built, e.g. to take a step on synthetic batches)."""
  cache = {}

  def held_out(n: int) -> dict:
    if cache.get("n", -1) < n:
      cache.update(n=n, examples=image2image_data.held_out(data_config, n))
    return {name: value[:n] for name, value in cache["examples"].items()}
  return held_out


def translation_grid(translate, held_out, rows: int = GRID_ROWS):
  """grid(params, model_state, key) -> images[rows, input | output | target (where known)]."""
  def grid(params, model_state, key):
    examples = held_out(rows)
    source = jnp.asarray(examples["source"])
    columns = [source, translate(params, model_state, key, source.shape[0], source=source)]
    if "target" in examples:
      columns.append(jnp.asarray(examples["target"]))
    return jnp.stack(columns, axis=1)
  return grid


def make(config) -> GanVariant:
  model, data_config = config.model, config.data
  check_choice("objective", model.objective, OBJECTIVES)
  check_choice("test_mode", model.test_mode, TEST_MODES)
  terms = model.objective.split("+")
  adversarial, conditional, use_l1 = model.objective != "l1", "cgan" in terms, "l1" in terms
  channels = data_config.channels
  crop_size, flip = training.jitter_settings(data_config)
  generator = networks.define_generator(model.generator, channels, model.ngf, model.norm, model.use_dropout,
                                        model.get("num_downs", None), model.get("n_blocks", None))
  discriminator = networks.define_discriminator(model.discriminator, model.ndf, model.n_layers_d, model.norm)

  def init(key):
    g_key, d_key = jax.random.split(key)
    g_params, g_collections = common.init_module(generator, g_key, jnp.zeros((1, crop_size, crop_size, channels)))
    params, model_state = {"g": g_params}, {"g": g_collections}
    if adversarial:
      d_channels = 2 * channels if conditional else channels
      params["d"], model_state["d"] = common.init_module(discriminator, d_key,
                                                         jnp.zeros((1, crop_size, crop_size, d_channels)))
    return params, model_state

  def prepare(params, model_state, batch, key, due):
    """The step's jittered pair and G(A) with its VJP (dropout and batch statistics of train mode), once for
    both phases: D learns on this G(A), G through it (Prepared.replay), as the official iteration."""
    del due  # every phase reads G(A)
    a, b = training.random_jitter(jax.random.fold_in(key, 0), [batch["a"], batch["b"]], crop_size, flip)
    translate = lambda g_params: common.apply_module(generator, g_params, model_state["g"], a, train=True,
                                                     rngs={"dropout": jax.random.fold_in(key, 1)})
    return {"a": a, "b": b, "fake": common.forward_once(translate, params["g"])}

  def d_input(a, b):
    return jnp.concatenate([a, b], axis=-1) if conditional else b

  def discriminate(params, d_collections, x):
    return common.apply_module(discriminator, params["d"], d_collections, x, train=True)

  def d_loss(params, model_state, batch, key):
    a, fake = batch["a"], batch["fake"].outputs
    fake_scores, d_collections = discriminate(params, model_state["d"], d_input(a, fake))
    real_scores, d_collections = discriminate(params, d_collections, d_input(a, batch["b"]))
    fake_loss = training.gan_loss(fake_scores, False, model.gan_mode)
    real_loss = training.gan_loss(real_scores, True, model.gan_mode)
    metrics = {"fake": fake_loss, "real": real_loss}
    return 0.5 * (fake_loss + real_loss), (metrics, {**model_state, "d": d_collections})

  def g_loss(params, model_state, batch, key):
    a, b = batch["a"], batch["b"]
    fake = batch["fake"].replay(params["g"])
    loss, metrics = 0.0, {}
    if adversarial:
      scores, _ = discriminate(params, model_state["d"], d_input(a, fake))
      metrics["gan"] = training.gan_loss(scores, True, model.gan_mode)
      loss += metrics["gan"]
    if use_l1:
      metrics["l1"] = training.l1(fake, b)
      loss += model.lambda_l1 * metrics["l1"]
    # G's batch statistics advance once per step, with the one G forward pass.
    return loss, (metrics, {**model_state, "g": batch["fake"].aux})

  def sample(params, model_state, key, n, source=None):
    if source is None:
      raise ValueError("pix2pix translates inputs: sample(..., source=images[n, H, W, C]) (--mode=sample takes "
                       "the held-out inputs, or --input=DIR).")
    source = jnp.broadcast_to(source, (n,) + source.shape[-3:])
    outputs, _ = common.apply_module(generator, params["g"], model_state["g"], source,
                                     train=model.test_mode == "train", rngs={"dropout": key})
    return outputs

  phases = (Phase("d_main", d_loss, updates=("d",)),) if adversarial else ()
  held_out = held_out_loader(data_config)
  return GanVariant(
      init=init,
      phases=phases + (Phase("g_main", g_loss, updates=("g",)),),
      sample=sample,
      modules={"g": generator, "d": discriminator},
      conditioning=("source",),
      grid=translation_grid(sample, held_out),
      held_out=held_out,
      prepare=prepare,
  )
