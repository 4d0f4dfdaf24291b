"""CycleGAN on edges <-> Fashion-MNIST garments, unpaired (32x32, offline): the paper's Table 4 in miniature.

Data: as pix2pix_edges2fashion, but unpaired: the A domain (edge maps) comes from the first 30,000
training garments and the B domain (garments) from the other 30,000, drawn independently, so no training
garment is ever seen with its own edges; the 10,000 held-out test pairs are known, which makes the
translation measurable (L1, PSNR, SSIM, classifier accuracy and classifier-FID: --mode=eval).
Launch: python launch.py --experiment=cyclegan_edges2fashion --workdir=/tmp/cg_e2f
  Table 4 rows: --config.model.objective=cycle | gan | gan+forward | gan+backward | cyclegan (default);
  the paper's table had no identity loss: --config.model.lambda_identity=0. Upper bound: pix2pix_edges2fashion.
Runtime: 6.5 steps/s on 2 idle CPU cores (the rate at the end of 300-step runs, commit a01975c), so the 4,000
  steps take about 10 minutes plus compilation and evaluation (not run end to end yet).
Reproduces: the paper's Table 4 finding in miniature (GAN alone and GAN + one cycle collapse or lose the
  input's content; cycle alone is not realistic; both cycles + GAN best); measured at 300 and 1,000 steps,
  two seeds, in the README (at 1,000 steps the full model is the most realistic row, cycle alone the least).

Settings: the official CycleGAN (ResNet generators with reflection padding and instance norm, 70x70 PatchGANs,
least-squares GAN, lambda 10, identity 0.5 x lambda, 50-image pools, Adam 2e-4 beta1 0.5), narrowed for a
CPU: resnet_6blocks with ngf = ndf = 32, jitter scaled down (load 36, crop 32, flips), batch 4 (the
paper's 1 works too), the linear policy over 20 epochs of 200 steps (4,000 steps).
"""
from experiments import image2image_configs


def get_config():
  config = image2image_configs.cyclegan_config(
      resolution=36, crop_size=32, flip=True, channels=1, batch_size=4, n_epochs=10, n_epochs_decay=10,
      epoch_size=200 * 4, generator="resnet_6blocks", ngf=32, ndf=32)
  image2image_configs.use_edges2fashion(config, paired=False)
  config.train.log_every = 100
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  config.eval.num_samples = 2000
  return config
