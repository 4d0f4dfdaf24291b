"""Config builders shared by the pix2pix and CycleGAN experiments (not an experiment itself).

Defaults are the official code's (junyanz/pytorch-CycleGAN-and-pix2pix, options/*.py and the models'
modify_commandline_options): Adam(2e-4, beta1 0.5), the linear learning-rate policy (n_epochs constant,
n_epochs_decay to zero) as an optax schedule in config.optim.*.schedule, load_size 286, crop_size 256 and
flips for training, batch 1.
"""
import math

import ml_collections

from experiments import common


def linear_decay(n_epochs: int, n_epochs_decay: int, steps_per_epoch: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"name": "linear_decay", "n_epochs": n_epochs, "n_epochs_decay": n_epochs_decay,
                                    "steps_per_epoch": steps_per_epoch})


def _schedule(config, n_epochs: int, n_epochs_decay: int, epoch_size: int) -> None:
  """The official schedule for `epoch_size` examples per epoch at the config's batch size; sets train.steps."""
  steps_per_epoch = math.ceil(epoch_size / config.train.batch_size)  # the official loader keeps the last batch
  for group in config.optim:
    config.optim[group].schedule = linear_decay(n_epochs, n_epochs_decay, steps_per_epoch)
  config.train.steps = (n_epochs + n_epochs_decay) * steps_per_epoch


def _image2image_base(variant: str, groups, *, resolution: int, crop_size: int, flip: bool, channels: int,
                      batch_size: int) -> ml_collections.ConfigDict:
  config = common.base_config()
  config.variant = variant
  config.data.resolution = resolution  # the official load_size
  config.data.channels = channels  # of both domains
  config.data.crop_size = crop_size  # random crop for training; held-out data loads at crop_size (no jitter)
  config.data.flip = flip  # random horizontal flips for training
  config.data.direction = "AtoB"  # AtoB or BtoA (swaps the domains, as the official --direction)
  config.data.test_split = "test"  # the held-out split (sampling and evaluation)
  config.data.paired = True  # edges2fashion only: aligned pairs (False: unpaired halves)
  config.data.unpaired_seed = 0  # which B an unpaired element draws
  config.train.batch_size = batch_size
  config.train.num_grid_samples = 8
  config.optim = ml_collections.ConfigDict({group: common.adam(2e-4, b1=0.5) for group in groups})
  config.eval.metrics = ("translation",)
  return config


def pix2pix_config(*, objective: str = "l1+cgan", resolution: int = 286, crop_size: int = 256, flip: bool = True,
                   channels: int = 3, batch_size: int = 1, n_epochs: int = 100, n_epochs_decay: int = 100,
                   epoch_size: int = 400, generator: str = "unet_256", num_downs: int = 8, ngf: int = 64,
                   ndf: int = 64, n_layers_d: int = 3) -> ml_collections.ConfigDict:
  """pix2pix as the official train.py with --model pix2pix (facades: 400 pairs, 200 epochs)."""
  config = _image2image_base("pix2pix", ("g", "d"), resolution=resolution, crop_size=crop_size, flip=flip,
                             channels=channels, batch_size=batch_size)
  config.model = ml_collections.ConfigDict({
      "objective": objective,  # l1 | gan | cgan | l1+gan | l1+cgan (Table 1 of the paper)
      "generator": generator,  # unet_256 | unet_128 | unet (num_downs) | resnet_9blocks | resnet_6blocks | resnet
      "num_downs": num_downs,  # U-Net depth for generator "unet"
      "n_blocks": 9,  # residual blocks for generator "resnet"
      "ngf": ngf,  # G's first-layer channels
      "ndf": ndf,  # D's first-layer channels
      "discriminator": "n_layers",  # basic (= n_layers with 3) | n_layers | pixel
      "n_layers_d": n_layers_d,  # 3: the 70x70 PatchGAN
      "norm": "batch",  # batch | instance | none
      "use_dropout": True,  # the U-Net's dropout: G's noise
      "lambda_l1": 100.0,
      "gan_mode": "vanilla",  # vanilla (BCE) | lsgan
      "test_mode": "train",  # train: dropout and test-batch statistics at test time (official default); eval
  })
  _schedule(config, n_epochs, n_epochs_decay, epoch_size)
  return config


def cyclegan_config(*, objective: str = "cyclegan", resolution: int = 286, crop_size: int = 256, flip: bool = True,
                    channels: int = 3, batch_size: int = 1, n_epochs: int = 100, n_epochs_decay: int = 100,
                    epoch_size: int = 1334, generator: str = "resnet_9blocks", ngf: int = 64, ndf: int = 64,
                    n_layers_d: int = 3, lambda_identity: float = 0.5) -> ml_collections.ConfigDict:
  """CycleGAN as the official train.py with --model cycle_gan (horse2zebra: max(|A|, |B|) = 1334 per epoch)."""
  config = _image2image_base("cyclegan", ("g_ab", "g_ba", "d_a", "d_b"), resolution=resolution,
                             crop_size=crop_size, flip=flip, channels=channels, batch_size=batch_size)
  config.model = ml_collections.ConfigDict({
      "objective": objective,  # cycle | gan | gan+forward | gan+backward | cyclegan (Table 4 of the paper)
      "generator": generator,  # resnet_9blocks | resnet_6blocks | resnet (n_blocks) | unet_256 | unet_128 | unet
      "num_downs": 8,  # U-Net depth for generator "unet"
      "n_blocks": 9,  # residual blocks for generator "resnet"
      "ngf": ngf,
      "ndf": ndf,
      "discriminator": "n_layers",
      "n_layers_d": n_layers_d,  # 3: the 70x70 PatchGAN
      "norm": "instance",
      "use_dropout": False,  # CycleGAN's no_dropout
      "gan_mode": "lsgan",
      "lambda_a": 10.0,  # forward cycle A -> B -> A
      "lambda_b": 10.0,  # backward cycle B -> A -> B
      "lambda_identity": lambda_identity,  # times lambda_A/B; 0 = no identity loss
      "pool_size": 50,  # history of generated images per domain fed to D; 0 = none
      "test_mode": "train",
      "sample_direction": "AtoB",  # AtoB: G_AB(testA); BtoA: G_BA(testB)
  })
  _schedule(config, n_epochs, n_epochs_decay, epoch_size)
  return config


def use_edges2fashion(config, *, paired: bool) -> ml_collections.ConfigDict:
  """Edges (A) <-> Fashion-MNIST garments (B) from the IDX files, 32x32 grey, no download (gans/data/image2image.py)."""
  config.data.source = "edges2fashion"
  config.data.path = common.FASHION_MNIST_DIR
  config.data.paired = paired
  config.data.test_split = "test"
  return config
