"""CycleGAN on horse2zebra (256x256), the paper's settings: the official horse2zebra run.

Data: TFDS cycle_gan/horse2zebra (prepared once beforehand: tfds build cycle_gan/horse2zebra
--file_format=array_record; --config.data.path=its data_dir), or the official folders (trainA, trainB,
testA, testB) with --config.data.source=unpaired_folder --config.data.path=DIR.
Launch: python launch.py --experiment=cyclegan_horse2zebra --workdir=/tmp/cg_h2z
Runtime: not run here (no download on this machine); 266,800 steps at batch 1.
Reproduces: the paper's horse2zebra setting (ResNet 9 blocks, instance norm, 70x70 PatchGANs, LSGAN,
  lambda 10, identity 0.5, 50-image pools, load 286 / crop 256 / flips, batch 1, 200 epochs of
  max(|A|, |B|) = 1334 images: 100 at 2e-4, then linear decay over 100). No paired targets exist: samples
  and FID/KID of the testA translations against the real testB zebras judge it (--mode=eval
  --config.eval.metrics=translation --config.eval.inception_weights=FILE).
"""
from experiments import image2image_configs


def get_config():
  config = image2image_configs.cyclegan_config(epoch_size=1334)  # max(|trainA| = 1067, |trainB| = 1334)
  config.data.source = "tfds_cycle_gan"
  config.data.name = "horse2zebra"
  config.train.log_every = 1000
  config.train.sample_every = 10_000
  config.train.checkpoint_every = 10_000
  config.eval.metrics = ()  # no known pairs: --mode=sample, or translation with the Inception weights (FID)
  return config
