"""DCGAN on MNIST from TFDS (28x28 resized to 32x32).

Data: prepared TFDS data; `pip install -e .[prepare]` then `tfds build mnist --data_dir=DIR` on a machine
with internet, and --config.data.path=DIR here. Reading needs no TensorFlow.
Launch: python launch.py --experiment=dcgan_mnist --workdir=/tmp/dcgan_mnist --config.data.path=DIR
Runtime: not run end to end here (no prepared MNIST). Its step is dcgan_fashion_mnist's: 378 images/s on 2 idle
  CPU cores (`python benchmarks/train_step.py --experiment=dcgan_fashion_mnist --torch=false`), so the 10,000
  default steps are ~56 min of steps before data loading and evaluation.
Reproduces: no published DCGAN number on MNIST; FID/KID columns come with the metrics issue.
"""
from experiments import common
from gans.metrics import eval_config


def get_config():
  config = common.dcgan_config(resolution=32, channels=1, base_channels=64)
  common.use_tfds_mnist(config)
  config.train.steps = 10_000
  # Needs --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth (see README, Evaluation).
  config.eval = eval_config.eval_config(eval_config.INCEPTION_METRICS, num_samples=10_000)
  return config
