"""InfoGAN on scikit-learn's 8x8 digits upsampled to 32x32: a 10-way code learnt without labels, no download.

Launch: python launch.py --experiment=infogan_digits --workdir=/tmp/infogan_digits
        python launch.py --experiment=infogan_digits --workdir=/tmp/infogan_digits --mode=sample --code=3
Runtime: 3000 steps (the default) took 8 min 41 s to 9 min 10 s of wall time per seed on 2 CPU cores
(about 6 steps/s; another training run shared the machine).
Reproduces: Chen et al. (2016), sec. 7.1: the categorical code as a classifier of MNIST digits, about 5%
error (95% accuracy) under the best matching of codes to classes. eval.jsonl: code_accuracy of Q's code on
all 1797 labelled digits (labels are read only for this score, never in training), and
generated_code_accuracy, how consistently a held-out digits classifier sees one class per code.
Measured, seeds 0/1/2 (mean +- sample std): code_accuracy 75.0 +- 6.6% at step 1000, 75.1 +- 4.1% at 2000,
67.5 +- 6.2% at 3000 (seed 0: 82.5 / 79.6 / 74.3%). Below the paper's MNIST figure, and falling after
2000 steps: some codes hold two digits that the continuous code switches between (README grid).
Short CPU runs on 1797 small digits, not the paper's MNIST training.
"""
import ml_collections

from experiments import common


def infogan_config(resolution: int, channels: int) -> ml_collections.ConfigDict:
  """The paper's MNIST setup (Chen et al. 2016, appendix C.1), shared by the infogan_* experiments.

  Latents: 62 noise dims ~ U(-1, 1), one 10-way categorical code, two continuous codes ~ U(-1, 1);
  lambda = 1 for both code types. Adam b1 = 0.5 with lr 2e-4 for D and 1e-3 for G; the Q head trains
  with G, at G's rate. Batch 128; non-saturating G loss.
  """
  config = common.base_config()
  config.variant = "infogan"
  config.model = ml_collections.ConfigDict({
      "z_dim": 62,  # noise dimensions besides the codes
      "num_categories": 10,
      "num_continuous": 2,
      "mi_weight_categorical": 1.0,  # lambda for the categorical code
      "mi_weight_continuous": 1.0,  # lambda for the continuous codes
      "mi_through_trunk": True,  # the D phase also trains the shared trunk on - lambda L_I (module docstring)
      "g_channels": 64,  # the paper's widths: G 1024 / 128 / 64
      "d_channels": 64,  # the paper's widths: D 64 / 128 / 1024, Q 128
      "loss": "non_saturating",
  })
  config.data.resolution = resolution
  config.data.channels = channels
  config.train.batch_size = 128
  config.train.num_grid_samples = 100  # the grid: 10 codes x 10 values of the first continuous code
  config.optim = ml_collections.ConfigDict({"g": common.adam(1e-3), "d": common.adam(2e-4), "q": common.adam(1e-3)})
  return config


def get_config():
  config = infogan_config(resolution=32, channels=1)
  config.model.g_channels = 32  # half the paper's widths: 1797 small digits, and a CPU-sized run
  config.model.d_channels = 32
  config.data.source = "digits"
  config.eval.metrics = ("code_accuracy",)
  config.train.batch_size = 64
  config.train.steps = 3000
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  return config
