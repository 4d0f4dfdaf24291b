"""pix2pix on edges -> Fashion-MNIST garments (32x32, offline): the paper's Table 1 objectives in miniature.

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist; --config.data.path=DIR for any
folder with the IDX files). Domain A is the Sobel edge map of the garment (gans/data/image2image.py
edge_map), domain B the garment; 60,000 training pairs, the 10,000 test pairs held out with their classes.
Launch: python launch.py --experiment=pix2pix_edges2fashion --workdir=/tmp/p2p_e2f
  Table 1 rows: --config.model.objective=l1 | gan | cgan | l1+gan | l1+cgan (default).
  Translate: --mode=sample (the held-out test edges; or --input=DIR), --mode=eval (L1, PSNR, SSIM to the
  true garments; the Fashion-MNIST classifier's accuracy on the outputs beside its accuracy on the targets,
  and its classifier-FID of the outputs against the targets; FID/KID with --config.eval.inception_weights).
Runtime: 10 steps/s on 2 idle CPU cores (the rate at the end of 300-step runs, commit a01975c), so the 4,000
  steps take about 7 minutes plus compilation and evaluation (not run end to end yet).
Reproduces: the paper's Table 1 finding in miniature (L1 alone blurry, cGAN alone sharp but less faithful,
  L1+cGAN best overall); measured numbers in the README.

Settings: the official pix2pix (U-Net with dropout and batch norm, conditional 70x70-receptive-field
PatchGAN, vanilla GAN loss, lambda_L1 100, Adam 2e-4 beta1 0.5), narrowed for a CPU: a 5-level U-Net
(32 -> 1 pixel) with ngf = ndf = 32, jitter as the paper's 286 -> 256 scaled down (load 36, crop 32, flips),
batch 32, and the official linear policy over 20 epochs of 200 steps each (n_epochs 10, n_epochs_decay 10): 4,000 steps.
"""
from experiments import image2image_configs


def get_config():
  config = image2image_configs.pix2pix_config(
      resolution=36, crop_size=32, flip=True, channels=1, batch_size=32, n_epochs=10, n_epochs_decay=10,
      epoch_size=200 * 32, generator="unet", num_downs=5, ngf=32, ndf=32)
  image2image_configs.use_edges2fashion(config, paired=True)
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  config.eval.num_samples = 2000  # held-out pairs translated by --mode=eval
  return config
