"""InfoGAN on MNIST from TFDS (28x28 resized to 32x32): the paper's experiment, 10-way code without labels.

Data: prepared TFDS data; `pip install -e .[prepare]` then `tfds build mnist --data_dir=DIR` on a machine
with internet, and --config.data.path=DIR here. Reading needs no TensorFlow.
Launch: python launch.py --experiment=infogan_mnist --workdir=/tmp/infogan_mnist --config.data.path=DIR
Runtime: not measured (no prepared MNIST on the development machine).
Reproduces: Chen et al. (2016), sec. 7.1: the categorical code classifies MNIST with about 5% error under the
best matching of codes to classes; eval.jsonl's code_accuracy measures it on the test split.
"""
from experiments import common
from experiments.infogan_digits import infogan_config


def get_config():
  config = infogan_config(resolution=32, channels=1)
  common.use_tfds_mnist(config)
  config.train.steps = 10_000
  config.eval.metrics = ("code_accuracy",)
  return config
