"""The PyTorch references of benchmarks/ time the same WaveGAN and SpecGAN networks: equal parameter counts."""
import jax
import numpy as np
import pytest

from gans.variants import get_variant
from test_training import tiny_config

torch = pytest.importorskip("torch")
from benchmarks import torch_specgan, torch_wavegan  # noqa: E402  (only where torch exists)


def _our_count(config) -> dict:
  params, _ = jax.eval_shape(get_variant(config.variant)(config).init, jax.random.key(0))
  return {group: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params[group])) for group in ("g", "d")}


def _torch_count(networks) -> dict:
  return {group: sum(p.numel() for p in net.parameters()) for group, net in zip(("g", "d"), networks)}


@pytest.mark.parametrize("name,paper_size", [("wavegan_digits", False), ("wavegan_sc09", True),
                                             ("specgan_digits", False), ("specgan_sc09", True)])
def test_the_torch_reference_has_our_parameter_count(name, paper_size):
  config = tiny_config(name)
  if paper_size:  # the paper's d = 64 at 16 kHz, 16384 samples; the tiny config's audio otherwise
    with config.unlocked():
      config.model.g_channels = config.model.d_channels = 64
      config.model.z_dim = 100
      config.data.sample_rate, config.data.clip_length = 16_000, 16_384
  module = torch_wavegan if name.startswith("wavegan") else torch_specgan
  assert _torch_count(module.make_networks(config)) == _our_count(config)


def test_the_torch_spectrogram_is_ours():
  from gans import audio
  clips = np.random.default_rng(0).uniform(-1, 1, (2, 1, 2048)).astype(np.float32)
  ours = audio.normalise(audio.log_magnitude(clips[:, 0], 128, 64), {"mean": np.zeros(64), "std": np.ones(64)})
  theirs = torch_specgan.spectrogram(torch.from_numpy(clips), 128, torch.zeros(64), torch.ones(64))[:, 0]
  np.testing.assert_allclose(theirs.numpy(), np.asarray(ours), atol=1e-4)
