"""Config builder shared by the SRResNet / SRGAN experiments (not an experiment itself).

Defaults are the paper's (Ledig et al. 2017, sec. 3.2): Adam with beta1 0.9 and learning rate 1e-4,
16 HR crops of 96x96 per batch, x4 bicubic downscaling, LR inputs in [0, 1] and HR targets in [-1, 1],
B = 16 residual blocks of 64 channels, adversarial weight 1e-3; SRGAN's learning rate drops to 1e-5 for the second
half of its GAN steps (a piecewise-constant schedule of each group's update count: G counts its pretraining
updates too, D starts counting when the GAN phases start).
"""
import ml_collections

from experiments import common
from gans.metrics import eval_config

LEARNING_RATE = 1e-4  # the paper's, for SRResNet and for SRGAN's first half


def srgan_config(*, objective: str, content: str = "mse", blocks: int = 16, features: int = 64, crop: int = 96,
                 batch_size: int = 16, steps: int = 1000, pretrain_steps: int = 0,
                 pretrain_learning_rate: float = LEARNING_RATE) -> ml_collections.ConfigDict:
  """`pretrain_learning_rate`: G's rate while it trains alone (SRResNet, or SRGAN's pretraining phase); the
  paper's 1e-4 unless a short run needs more. SRGAN's own steps use the paper's 1e-4, then 1e-5."""
  config = common.base_config()
  config.variant = "srgan"
  config.model = ml_collections.ConfigDict({
      "objective": objective,  # srresnet (content loss only, no D) | srgan (content + adversarial)
      "content": content,  # mse | vgg22 | vgg54 (Table 1's rows)
      "vgg_weights": "",  # vgg22/vgg54: torchvision's vgg19-dcbccbbe.pth (gans/metrics/vgg19.py)
      "blocks": blocks,  # G's residual blocks, B
      "features": features,  # G's width
      "d_features": 64,  # D's first width (64 ... 512 over its eight convs)
      "d_dense": 1024,
      "adversarial_weight": 1e-3,
      # srgan: steps of SRResNet-MSE pretraining of G (phase g_pretrain) before D and the GAN loss start.
      "pretrain_steps": pretrain_steps,
      "dtype": "float32",
  })
  config.data.source = "sr_photos"
  config.data.resolution = crop  # the HR crop; LR = crop / 4
  config.data.channels = 3
  config.data.size = 100_000  # virtual epoch: random crops, element i from (crop_seed, i)
  config.data.crop_seed = 0
  config.data.eval_size = 128  # held-out central HR square (at most)
  config.data.eval_path = ""  # sr_folder: the held-out image folder (e.g. Set5, Set14, BSD100)
  config.train.batch_size = batch_size
  config.train.steps = steps
  config.train.num_grid_samples = 4
  groups = ("g", "d") if objective == "srgan" else ("g",)
  config.optim = ml_collections.ConfigDict({group: common.adam(LEARNING_RATE, b1=0.9) for group in groups})
  config.optim.g.learning_rate = pretrain_learning_rate
  if objective == "srgan":
    half = (steps - pretrain_steps) // 2
    # Schedules count each group's updates: G's include its pretraining, D's start with the GAN steps.
    g_boundaries, g_scales = (pretrain_steps + half,), (0.1,)
    if pretrain_steps and pretrain_learning_rate != LEARNING_RATE:  # to the paper's rate for the GAN steps
      g_boundaries, g_scales = (pretrain_steps,) + g_boundaries, (LEARNING_RATE / pretrain_learning_rate, 0.1)
    for group, boundaries, scales in (("g", g_boundaries, g_scales), ("d", (half,), (0.1,))):
      config.optim[group].schedule = ml_collections.ConfigDict({"name": "piecewise_constant",
                                                                "boundaries": boundaries, "scales": scales})
  config.eval = eval_config.eval_config(("super_resolution",), num_samples=16)
  return config


def on_div2k(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The paper's data and reporting (srresnet_div2k, srgan_div2k): TFDS div2k/bicubic_x4, whole held-out
  images (div2k's validation set, or Set5/Set14 through --config.data.eval_path)."""
  config.data.source = "sr_div2k"
  config.data.path = ""  # --config.data.path: the TFDS data_dir holding div2k/bicubic_x4
  config.data.eval_size = 0  # whole held-out images
  config.train.log_every = 1000
  config.train.sample_every = 50_000
  config.train.checkpoint_every = 10_000
  config.eval.num_samples = 100  # div2k's validation images (Set5: 5, Set14: 14)
  return config
