"""The GAN-INT-CLS recipe shared by the gan_int_cls_* experiments (Reed et al. 2016, sec. 5 and its code)."""
import ml_collections

from experiments import common


def gan_int_cls_config(resolution: int, base_channels: int, text_encoder: str,
                       embedding_dim: int) -> ml_collections.ConfigDict:
  """Adam(2e-4, b1 0.5), batch 64, z ~ N(0, I) of 100 dims, the embedding projected to 128 dims, objective
  gan-int-cls with beta = 0.5: the paper's settings. The char_cnn_rnn encoder's groups get their own Adam."""
  config = common.dcgan_config(resolution=resolution, channels=3, base_channels=base_channels)
  config.variant = "gan_int_cls"
  config.model = ml_collections.ConfigDict({
      "z_dim": 100, "g_channels": base_channels, "d_channels": base_channels,
      "objective": "gan-int-cls",  # gan, gan-cls, gan-int or gan-int-cls (gans/variants/text2image/gan_int_cls.py)
      "interpolation_beta": 0.5,
      "projection_dim": 128,  # the learned projection of the sentence embedding, in G and in D
      "text_encoder": text_encoder,  # "precomputed" (the batch's "embedding") or "char_cnn_rnn" (trained here)
      "embedding_dim": embedding_dim,  # the sentence embedding's size (1024 in the paper's releases)
      # char_cnn_rnn only: its widths, and the steps it trains before the GAN phases start (then frozen).
      "text_channels": 64, "text_hidden": 128, "image_encoder_channels": 32, "pretrain_steps": 0,
      "dtype": "float32",
  })
  config.train.batch_size = 64
  config.train.num_grid_samples = 64
  config.eval.metrics = ()
  if text_encoder == "char_cnn_rnn":
    config.optim.text = common.adam(1e-3, b1=0.9)
    config.optim.image_encoder = common.adam(1e-3, b1=0.9)
  return config
