"""The 3D-GAN's config (Wu et al. 2016, sec. 3 and 4.1), shared by its experiments."""
import ml_collections

from experiments import common
from gans.metrics import eval_config


def gan3d_config(resolution: int, channels: int) -> ml_collections.ConfigDict:
  """G z(200) -> 4^3 x 8 channels -> transposed 3D convs halving the channels -> 1, sigmoid; D the mirror.

  The paper: 64^3, channels = 64 (G 512 -> 256 -> 128 -> 64 -> 1, D 64 -> 128 -> 256 -> 512 -> 1), Adam with
  b1 = 0.5, learning rates 0.0025 (G) and 1e-5 (D), batch 100, D updated only while its accuracy on the batch
  is below 80%.
  """
  config = common.base_config()
  config.variant = "gan3d"
  config.model = ml_collections.ConfigDict({
      "z_dim": 200,  # latent dimensions
      "g_channels": channels,  # G's last hidden layer; x2 at every lower resolution
      "d_channels": channels,  # D's first layer; x2 at every halving
      "loss": "non_saturating",  # sigmoid cross-entropy on D's logit; G maximises log D(G(z))
      "d_accuracy_threshold": 0.8,  # D learns only on batches it classifies with lower accuracy; > 1 = always
      "conv_form": "",  # gans.layers3d form; "" = the backend's default (space_to_depth on the CPU)
  })
  config.data.source = "shapes3d"
  config.data.resolution = resolution
  config.data.channels = 1
  config.train.batch_size = 100
  config.optim = ml_collections.ConfigDict({"g": common.adam(0.0025), "d": common.adam(1e-5)})
  # The paper's Table 1 in miniature at the end of training and with --mode=eval (gans/metrics/voxel_probe.py)
  config.eval = eval_config.eval_config(("voxel_probe",), num_samples=200, probe_train=700, probe_test=700)
  return config
