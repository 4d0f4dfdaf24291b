"""SpecGAN's training step split into pieces, each timed against the same piece of the PyTorch reference.

    python benchmarks/specgan_pieces.py --experiment=specgan_digits [--batch_size=16] [--rounds=7]

Pieces (ours: the variant's own phase losses and modules, jitted with layers.xla_cpu_compiler_options(); theirs:
benchmarks/torch_specgan.py's networks):
  g_fwd    G(z)
  d_fwd    D(x) on a batch of spectrograms
  d_grad   D's parameter gradient without the penalty: D(real) and D(fake) (input gradient not needed)
  gp_grad  the gradient penalty's parameter gradient alone (D's input gradient, then its gradient)
  d_loss   the whole D phase's loss gradient (G forward, spectrograms, both D passes, the penalty)
  g_loss   the whole G phase's loss gradient (G forward, D forward, back through both to G's parameters)
Each piece is one call, the two frameworks alternating, medians over the rounds; ratio = torch time / ours
(above 1: ours faster). The step is about d_loss + g_loss + two Adam updates.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
from absl import app, flags

import experiments
from gans import layers, losses, run
from gans.variants import specgan

flags.DEFINE_string("experiment", "specgan_digits", "A SpecGAN experiment.")
flags.DEFINE_integer("batch_size", 0, "0 = the experiment's.")
flags.DEFINE_integer("rounds", 7, "Alternating rounds; the median counts.")
flags.DEFINE_float("round_seconds", 1.0, "Approximate time per piece and framework in one round.")
flags.DEFINE_list("pieces", ["g_fwd", "d_fwd", "d_grad", "gp_grad", "d_loss", "g_loss"], "Pieces to time.")
FLAGS = flags.FLAGS


def jax_pieces(config):
  setup = run.Setup(config)
  variant, state = setup.variant, setup.initial_state
  params, model_state = state.params, state.model_state
  g, d = variant.modules["g"], variant.modules["d"]
  shape = specgan.SpectrogramShape(config.data)
  n = config.train.batch_size
  z = jax.random.uniform(jax.random.key(0), (n, config.model.z_dim), minval=-1, maxval=1)
  x = jax.random.uniform(jax.random.key(1), (n, shape.frames, shape.bins, 1), minval=-1, maxval=1)
  x2 = jax.random.uniform(jax.random.key(2), x.shape, minval=-1, maxval=1)
  batch = {"audio": jax.random.uniform(jax.random.key(3), (n, config.data.clip_length, 1), minval=-1, maxval=1)}
  key = jax.random.key(4)
  options = layers.xla_cpu_compiler_options()
  jit = lambda f: jax.jit(f, compiler_options=options)
  d_apply = lambda p, inputs: d.apply({"params": p}, inputs, train=True)

  def d_grad(p, real, fake):
    return jax.grad(lambda p: jnp.mean(d_apply(p, fake)) - jnp.mean(d_apply(p, real)))(p)

  def gp_grad(p, real, fake):
    return jax.grad(lambda p: losses.gradient_penalty(lambda inputs: d_apply(p, inputs), real, fake, key))(p)

  d_phase, g_phase = variant.phases

  def phase_grad(phase, group):
    def loss_of(trainable, params, model_state, batch, key):
      return phase.loss({**params, group: trainable}, model_state, batch, key)[0]
    grad = jit(jax.grad(loss_of))
    return lambda: grad(params[group], params, model_state, batch, key)

  g_fwd, d_fwd, d_grad, gp_grad = jit(lambda p, z: g.apply({"params": p}, z, train=True)), jit(d_apply), \
      jit(d_grad), jit(gp_grad)
  return {
      "g_fwd": lambda: g_fwd(params["g"], z),
      "d_fwd": lambda: d_fwd(params["d"], x),
      "d_grad": lambda: d_grad(params["d"], x, x2),
      "gp_grad": lambda: gp_grad(params["d"], x, x2),
      "d_loss": phase_grad(d_phase, "d"),
      "g_loss": phase_grad(g_phase, "g"),
  }


def torch_pieces(config):
  import torch
  from benchmarks import torch_specgan, torch_wavegan
  generator, discriminator = torch_specgan.make_networks(config)
  shape = specgan.SpectrogramShape(config.data)
  n = config.train.batch_size
  window = torch_specgan.window_for(config.data.sample_rate)
  mean, std = torch.zeros(window // 2), torch.ones(window // 2)
  z = torch.rand(n, config.model.z_dim) * 2 - 1
  x, x2 = (torch.rand(n, 1, shape.frames, shape.bins) * 2 - 1 for _ in range(2))
  audio = torch.rand(n, 1, config.data.clip_length) * 2 - 1
  d_params, g_params = list(discriminator.parameters()), list(generator.parameters())

  def g_fwd():
    with torch.no_grad():
      generator(z)

  def d_fwd():
    with torch.no_grad():
      discriminator(x)

  def d_grad():
    torch.autograd.grad(discriminator(x2).mean() - discriminator(x).mean(), d_params)

  def gp_grad():
    torch.autograd.grad(torch_wavegan.gradient_penalty(discriminator, x, x2), d_params, allow_unused=True)

  def d_loss():  # torch_wavegan.make_wgan_gp_step's D update without the optimizer
    with torch.no_grad():
      fake = generator(z)
    real = torch_specgan.spectrogram(audio, window, mean, std)
    loss = (discriminator(fake).mean() - discriminator(real).mean()
            + config.model.gp_weight * torch_wavegan.gradient_penalty(discriminator, real, fake))
    torch.autograd.grad(loss, d_params)

  def g_loss():
    torch.autograd.grad(-discriminator(generator(z)).mean(), g_params)

  return {"g_fwd": g_fwd, "d_fwd": d_fwd, "d_grad": d_grad, "gp_grad": gp_grad, "d_loss": d_loss,
          "g_loss": g_loss}


def blocking(fn):
  def call():
    jax.block_until_ready(fn())
  return call


def seconds(fn, calls):
  start = time.perf_counter()
  for _ in range(calls):
    fn()
  return (time.perf_counter() - start) / calls


def main(_):
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  ours, theirs = jax_pieces(config), torch_pieces(config)
  for name in FLAGS.pieces:
    pair = {"jax": blocking(ours[name]), "torch": theirs[name]}
    calls = {}
    for side, fn in pair.items():
      fn()
      calls[side] = max(1, int(FLAGS.round_seconds / max(seconds(fn, 1), 1e-6)))
    times = {side: [] for side in pair}
    for _ in range(FLAGS.rounds):
      for side, fn in pair.items():
        times[side].append(seconds(fn, calls[side]))
    jax_ms, torch_ms = (1e3 * statistics.median(times[side]) for side in ("jax", "torch"))
    print(f"{name:8s} jax {jax_ms:8.2f} ms  torch {torch_ms:8.2f} ms  torch/jax {torch_ms / jax_ms:5.2f}",
          flush=True)


if __name__ == "__main__":
  app.run(main)
