"""CycleGAN (Zhu et al. 2017): unpaired translation A <-> B, exact to the official code.

Two generators, G_AB: A -> B and G_BA: B -> A (official netG_A, netG_B; ResNet, instance norm, no dropout),
and two PatchGANs, D_B judging domain B and D_A judging domain A (official netD_A, netD_B). Least-squares
GAN loss; cycle losses lambda_A * L1(G_BA(G_AB(a)), a) and lambda_B * L1(G_AB(G_BA(b)), b) with
lambda_A = lambda_B = 10; identity losses lambda_identity * lambda_B * L1(G_AB(b), b) and
lambda_identity * lambda_A * L1(G_BA(a), a) with lambda_identity = 0.5 (0 turns them off). Each step
updates both generators first, then both discriminators, as the official optimize_parameters: the
D phase judges the fakes the G phase made (kept in model_state), drawn through the 50-image history pools
(model_state["pool_a"/"pool_b"], training.py: checkpointed and resumed with everything else). Each D loss
is halved: 0.5 * (GAN(D(real), real) + GAN(D(pool(fake)), fake)). Adam 2e-4, beta1 0.5, linear decay;
batch 1 in the paper.

`model.objective` selects the rows of the paper's Table 4: "cycle" (cycle losses alone, no D), "gan" (GAN
losses alone), "gan+forward" (GAN + the A -> B -> A cycle), "gan+backward" (GAN + the B -> A -> B cycle),
"cyclegan" (the default: everything). The identity term joins every row while lambda_identity > 0 (the
official default); the paper's Table 4 had none, so its ablations set model.lambda_identity = 0.

Sampling translates A -> B with G_AB, or B -> A with G_BA when model.sample_direction = "BtoA".
"""
import jax
import jax.numpy as jnp
import ml_collections

from gans.state import GanVariant, Phase
from gans.variants import common
from gans.variants.image2image import networks, pix2pix, training

OBJECTIVES = ("cycle", "gan", "gan+forward", "gan+backward", "cyclegan")
DIRECTIONS = ("AtoB", "BtoA")
GENERATORS = {"AtoB": "g_ab", "BtoA": "g_ba"}


def objective_terms(objective: str) -> tuple[bool, bool, bool]:
  """(GAN losses, forward cycle A -> B -> A, backward cycle B -> A -> B) of a Table 4 row."""
  pix2pix.check_choice("objective", objective, OBJECTIVES)
  return (objective != "cycle", objective in ("cycle", "gan+forward", "cyclegan"),
          objective in ("cycle", "gan+backward", "cyclegan"))


def make(config) -> GanVariant:
  model, data_config = config.model, config.data
  use_gan, forward_cycle, backward_cycle = objective_terms(model.objective)
  pix2pix.check_choice("test_mode", model.test_mode, pix2pix.TEST_MODES)
  pix2pix.check_choice("sample_direction", model.sample_direction, DIRECTIONS)
  channels = data_config.channels
  crop_size, flip = training.jitter_settings(data_config)
  image_shape = (crop_size, crop_size, channels)
  generator = networks.define_generator(model.generator, channels, model.ngf, model.norm, model.use_dropout,
                                        model.get("num_downs", None), model.get("n_blocks", None))
  discriminator = networks.define_discriminator(model.discriminator, model.ndf, model.n_layers_d, model.norm)
  lambda_a, lambda_b, lambda_identity = model.lambda_a, model.lambda_b, model.lambda_identity

  def init(key):
    keys = dict(zip(("g_ab", "g_ba", "d_a", "d_b"), jax.random.split(key, 4)))
    params, model_state = {}, {}
    for group in ("g_ab", "g_ba"):
      params[group], model_state[group] = common.init_module(generator, keys[group], jnp.zeros((1,) + image_shape))
    if use_gan:
      for group in ("d_a", "d_b"):
        params[group], model_state[group] = common.init_module(discriminator, keys[group],
                                                               jnp.zeros((1,) + image_shape))
        model_state["pool_" + group[-1]] = training.empty_pool(model.pool_size, image_shape)
        model_state["fake_" + group[-1]] = jnp.zeros((config.train.batch_size,) + image_shape)
    return params, model_state

  def prepare(params, model_state, batch, key, due):
    """The step's jittered reals, the same for the G and D phases. Unpaired: the official unaligned dataset
    draws A's and B's transforms independently."""
    del due  # every phase reads them
    a_key, b_key = jax.random.split(key)
    (a,), (b,) = (training.random_jitter(a_key, [batch["a"]], crop_size, flip),
                  training.random_jitter(b_key, [batch["b"]], crop_size, flip))
    return {"a": a, "b": b}

  def apply(module, group, params, collections, x, key, index):
    """module(x) with group's parameters; threads its collections (batch norm) through `collections`."""
    y, collections[group] = common.apply_module(module, params[group], collections[group], x, train=True,
                                                rngs={"dropout": jax.random.fold_in(key, index)})
    return y

  def g_loss(params, model_state, batch, key):
    a, b = batch["a"], batch["b"]
    collections = dict(model_state)
    fake_b = apply(generator, "g_ab", params, collections, a, key, 1)
    fake_a = apply(generator, "g_ba", params, collections, b, key, 2)
    metrics, loss = {}, 0.0
    if forward_cycle:
      metrics["cycle_a"] = lambda_a * training.l1(apply(generator, "g_ba", params, collections, fake_b, key, 3), a)
      loss += metrics["cycle_a"]
    if backward_cycle:
      metrics["cycle_b"] = lambda_b * training.l1(apply(generator, "g_ab", params, collections, fake_a, key, 4), b)
      loss += metrics["cycle_b"]
    if lambda_identity > 0:
      metrics["identity_a"] = lambda_identity * lambda_b * training.l1(
          apply(generator, "g_ab", params, collections, b, key, 5), b)
      metrics["identity_b"] = lambda_identity * lambda_a * training.l1(
          apply(generator, "g_ba", params, collections, a, key, 6), a)
      loss += metrics["identity_a"] + metrics["identity_b"]
    new_state = {**model_state, "g_ab": collections["g_ab"], "g_ba": collections["g_ba"]}
    if use_gan:
      # D's running statistics are not advanced by G's loss (the D phase's forwards advance them).
      scores_b, _ = common.apply_module(discriminator, params["d_b"], model_state["d_b"], fake_b, train=True)
      scores_a, _ = common.apply_module(discriminator, params["d_a"], model_state["d_a"], fake_a, train=True)
      metrics["gan_ab"] = training.gan_loss(scores_b, True, model.gan_mode)
      metrics["gan_ba"] = training.gan_loss(scores_a, True, model.gan_mode)
      loss += metrics["gan_ab"] + metrics["gan_ba"]
      new_state.update(fake_b=jax.lax.stop_gradient(fake_b), fake_a=jax.lax.stop_gradient(fake_a))
    return loss, (metrics, new_state)

  def d_loss(params, model_state, batch, key):
    a, b = batch["a"], batch["b"]  # the G phase's reals
    new_state, metrics, loss = dict(model_state), {}, 0.0
    for domain, real, pool_key in (("b", b, jax.random.fold_in(key, 0)), ("a", a, jax.random.fold_in(key, 1))):
      group = "d_" + domain
      fake, new_state["pool_" + domain] = training.query_pool(model_state["pool_" + domain],
                                                              model_state["fake_" + domain], pool_key)
      real_scores, collections = common.apply_module(discriminator, params[group], model_state[group], real,
                                                     train=True)
      fake_scores, new_state[group] = common.apply_module(discriminator, params[group], collections, fake,
                                                          train=True)
      metrics[f"{group}_real"] = training.gan_loss(real_scores, True, model.gan_mode)
      metrics[f"{group}_fake"] = training.gan_loss(fake_scores, False, model.gan_mode)
      # Halved per discriminator; the sum's gradient for each D is its own loss's.
      loss += 0.5 * (metrics[f"{group}_real"] + metrics[f"{group}_fake"])
    return loss, (metrics, new_state)

  sample_group = GENERATORS[model.sample_direction]

  def sample(params, model_state, key, n, source=None):
    if source is None:
      raise ValueError("CycleGAN translates inputs: sample(..., source=images[n, H, W, C]) (--mode=sample takes "
                       "the held-out inputs, or --input=DIR).")
    source = jnp.broadcast_to(source, (n,) + source.shape[-3:])
    outputs, _ = common.apply_module(generator, params[sample_group], model_state[sample_group], source,
                                     train=model.test_mode == "train", rngs={"dropout": key})
    return outputs

  held_out_data = data_config
  if model.sample_direction == "BtoA":  # inputs from domain B, targets from A
    held_out_data = ml_collections.ConfigDict(dict(data_config))
    held_out_data.direction = "BtoA" if data_config.get("direction", "AtoB") == "AtoB" else "AtoB"
  held_out = pix2pix.held_out_loader(held_out_data)
  phases = (Phase("g_main", g_loss, updates=("g_ab", "g_ba")),)
  if use_gan:
    phases += (Phase("d_main", d_loss, updates=("d_a", "d_b")),)
  return GanVariant(
      init=init,
      phases=phases,
      sample=sample,
      ema_groups=("g_ab", "g_ba"),
      modules={"g": generator, "d": discriminator},
      conditioning=("source",),
      grid=pix2pix.translation_grid(sample, held_out),
      held_out=held_out,
      prepare=prepare,
  )
