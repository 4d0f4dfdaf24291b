"""The StackGAN recipe shared by the stackgan_* experiments (Zhang et al. 2017 and its official code)."""
import ml_collections

from experiments import common

LEARNING_RATE = 2e-4  # TRAIN.GENERATOR_LR and TRAIN.DISCRIMINATOR_LR


def halving_schedule(decay_steps: int, stage_steps: int) -> ml_collections.ConfigDict:
  """The official decay: the learning rate halved every TRAIN.LR_DECAY_EPOCH epochs (decay_steps updates of the
  group) over its stage's stage_steps, as optax's piecewise-constant schedule of the group's update count."""
  boundaries = tuple(range(decay_steps, stage_steps, decay_steps)) if decay_steps > 0 else ()
  return ml_collections.ConfigDict({"name": "piecewise_constant", "boundaries": boundaries,
                                    "scales": (0.5,) * len(boundaries)})


def stackgan_config(*, resolution: int, stage1_resolution: int, g_channels: int, d_channels: int,
                    condition_dim: int, r_num: int, text_encoder: str, embedding_dim: int, stage1_steps: int,
                    stage2_steps: int, stage1_decay_steps: int, stage2_decay_steps: int) -> ml_collections.ConfigDict:
  """Adam(2e-4, betas (0.5, 0.999)) for each stage's G and D, halved every decay_steps of that stage; z ~ N(0, I)
  of 100 dims; KL coefficient 2.0 (TRAIN.COEFF.KL); batch 64. The char_cnn_rnn encoder's groups get
  gan_int_cls's Adam."""
  config = common.base_config()
  config.variant = "stackgan"
  config.model = ml_collections.ConfigDict({
      "z_dim": 100,  # Z_DIM
      "g_channels": g_channels,  # GAN.GF_DIM
      "d_channels": d_channels,  # GAN.DF_DIM
      "condition_dim": condition_dim,  # GAN.CONDITION_DIM: conditioning augmentation's c
      "r_num": r_num,  # GAN.R_NUM: Stage-II G's residual blocks
      "stage1_resolution": stage1_resolution,  # Stage-I's picture side; Stage-II's is data.resolution
      "stage1_steps": stage1_steps,  # Stage-I's steps (after the encoder's), then Stage-II to train.steps
      "kl_coefficient": 2.0,  # TRAIN.COEFF.KL
      "sample_stage": 0,  # the pictures sampling returns: 0 = the latest trained stage's, 1 = Stage-I, 2 = Stage-II
      "text_encoder": text_encoder,  # "precomputed" (the batch's "embedding") or "char_cnn_rnn" (trained here)
      "embedding_dim": embedding_dim,  # TEXT.DIMENSION, the sentence embedding's size (1024 in the releases)
      # char_cnn_rnn only (gan_int_cls's encoder): its widths, and the steps it trains before Stage-I (then frozen).
      "text_channels": 64, "text_hidden": 128, "image_encoder_channels": 32, "pretrain_steps": 0,
  })
  config.data.resolution = resolution
  config.data.channels = 3
  config.train.batch_size = 64
  config.train.num_grid_samples = 64
  config.train.steps = stage1_steps + stage2_steps
  config.optim = ml_collections.ConfigDict()
  for group, decay_steps, stage_steps in (("g1", stage1_decay_steps, stage1_steps), ("d1", stage1_decay_steps,
                                           stage1_steps), ("g2", stage2_decay_steps, stage2_steps),
                                          ("d2", stage2_decay_steps, stage2_steps)):
    config.optim[group] = common.adam(LEARNING_RATE)
    config.optim[group].schedule = halving_schedule(decay_steps, stage_steps)
  if text_encoder == "char_cnn_rnn":
    config.optim.text = common.adam(1e-3, b1=0.9)
    config.optim.image_encoder = common.adam(1e-3, b1=0.9)
  return config
