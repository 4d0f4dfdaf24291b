"""InfoGAN on Fashion-MNIST (28x28 resized to 32x32) from IDX files: a 10-way code learnt without labels.

Data: Debian's dataset-fashion-mnist package (`apt-get install dataset-fashion-mnist`) installs the IDX files
in /usr/share/datasets/fashion-mnist; any folder with the four standard files works via --config.data.path.
Launch: python launch.py --experiment=infogan_fashion_mnist --workdir=/tmp/infogan_fmnist
        python launch.py --experiment=infogan_fashion_mnist --workdir=/tmp/infogan_fmnist --mode=sample --code=3
Runtime: not measured (a GPU-sized run; the CPU measurement is infogan_digits).
Reproduces: no published number; eval.jsonl's code_accuracy scores Q's code on the test split against the
labels (read only for the score) under the best matching of codes to classes.
"""
from experiments import common
from experiments.infogan_digits import infogan_config


def get_config():
  config = infogan_config(resolution=32, channels=1)
  common.use_fashion_mnist(config)
  config.train.steps = 10_000
  config.eval.metrics = ("code_accuracy",)
  return config
