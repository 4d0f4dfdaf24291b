"""DCGAN on Fashion-MNIST (28x28 resized to 32x32) from IDX files.

Data: Debian's dataset-fashion-mnist package (`apt-get install dataset-fashion-mnist`) installs the IDX files
in /usr/share/datasets/fashion-mnist; any folder with the four standard files works via --config.data.path.
Launch: python launch.py --experiment=dcgan_fashion_mnist --workdir=/tmp/dcgan_fmnist
Runtime: not run end to end yet. The step runs at 378 images/s on 2 idle CPU cores (`python
  benchmarks/train_step.py --experiment=dcgan_fashion_mnist --torch=false`), so the 10,000 default steps are
  ~56 min of steps before data loading and evaluation.
Reproduces: no published DCGAN number on Fashion-MNIST; FID/KID columns come with the metrics issue.
"""
from experiments import common
from gans.metrics import eval_config


def get_config():
  config = common.dcgan_config(resolution=32, channels=1, base_channels=64)
  common.use_fashion_mnist(config)
  config.train.steps = 10_000
  # No download: the project's Fashion-MNIST classifier (trained on first use, cached), against all 60k images.
  config.eval = eval_config.eval_config(eval_config.CLASSIFIER_METRICS, num_samples=5000)
  return config
