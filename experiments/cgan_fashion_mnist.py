"""Conditional DCGAN on Fashion-MNIST (28x28 resized to 32x32) from IDX files: one class per `--label`.

Data: Debian's dataset-fashion-mnist package (`apt-get install dataset-fashion-mnist`) installs the IDX files
in /usr/share/datasets/fashion-mnist; any folder with the four standard files works via --config.data.path.
Launch: python launch.py --experiment=cgan_fashion_mnist --workdir=/tmp/cgan_fmnist
        python launch.py --experiment=cgan_fashion_mnist --workdir=/tmp/cgan_fmnist --mode=sample --label=9
Runtime: 3000 steps (the default; batch 128, 6.4 epochs) took 40 min of wall time on 2 CPU cores shared with a
  second training run for most of it (about 2 steps/s alone).
Reproduces: no published number; the check is label_accuracy (eval.jsonl) within a few points of the
classifier's own held-out accuracy on real Fashion-MNIST (classifier_accuracy, same record).
Measured (seed 0): label_accuracy 84.2% / 85.9% / 86.6% at steps 1000 / 2000 / 3000 against the classifier's
88.0% on the real test split; per class at 3000 from 62.8% (shirt, the class the classifier confuses most)
to 99.6% (trouser, bag).
"""
from experiments import common
from experiments.cgan_digits import cgan_config


def get_config():
  config = cgan_config(resolution=32, channels=1, base_channels=64)
  common.use_fashion_mnist(config)
  config.train.steps = 3000  # 6.4 epochs at batch 128
  config.train.eval_every = 1000
  config.eval.metrics = ("label_accuracy",)
  return config
