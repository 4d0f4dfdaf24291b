"""pix2pix on CMP Facades (labels -> photos, 256x256), the paper's settings: the official facades run.

Data: the official facades folder (pix2pix datasets page: facades.tar.gz), each file a photo (A, left) and
its label map (B, right) side by side: --config.data.path=/path/to/facades (with train/, val/, test/);
direction BtoA (labels -> photos) as the official facades command.
Launch: python launch.py --experiment=pix2pix_facades --workdir=/tmp/p2p_facades --config.data.path=DIR
Runtime: not run here (no download on this machine); 80,000 steps at batch 1.
Reproduces: the paper's facades setting (U-Net 256, 70x70 PatchGAN, lambda_L1 100, load 286 / crop 256 /
  flips, batch 1, 200 epochs: 100 at 2e-4 then linear decay over 100); outputs are compared with the
  held-out test photos by L1, PSNR and SSIM (the paper's FCN-score needs the FCN, not included).
"""
from experiments import image2image_configs


def get_config():
  config = image2image_configs.pix2pix_config(epoch_size=400)  # the 400 training pairs
  config.data.source = "paired_folder"
  config.data.path = ""  # --config.data.path: the facades folder with train/ and test/
  config.data.direction = "BtoA"
  config.train.log_every = 400
  config.train.sample_every = 4000
  config.train.checkpoint_every = 4000
  config.eval.num_samples = 106  # the test split's 106 pairs
  return config
