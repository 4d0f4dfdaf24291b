"""Conditional DCGAN on MNIST from TFDS (28x28 resized to 32x32): one digit per `--label`.

Data: prepared TFDS data; `pip install -e .[prepare]` then `tfds build mnist --data_dir=DIR` on a machine
with internet, and --config.data.path=DIR here. Reading needs no TensorFlow.
Launch: python launch.py --experiment=cgan_mnist --workdir=/tmp/cgan_mnist --config.data.path=DIR
Runtime: not measured (no prepared MNIST on the development machine).
Reproduces: Mirza & Osindero (2014) train on MNIST and report a Parzen log-likelihood, not an accuracy; the
check here is label_accuracy (eval.jsonl) close to the classifier's held-out accuracy on real MNIST.
For the paper's fully connected networks: --config.model.architecture=mlp.
"""
from experiments import common
from experiments.cgan_digits import cgan_config


def get_config():
  config = cgan_config(resolution=32, channels=1, base_channels=64)
  common.use_tfds_mnist(config)
  config.train.steps = 10_000
  config.eval.metrics = ("label_accuracy",)
  return config
