"""SRResNet-MSE with the paper's settings (Ledig et al. 2017) on TFDS div2k/bicubic_x4.

Data: TFDS div2k/bicubic_x4 prepared once beforehand (README, Experiments), --config.data.path=TFDS_DIR; its
  LR images are the dataset's own (MATLAB bicubic). Held out: div2k's validation split, or Set5/Set14/BSD100
  as a folder: --config.data.eval_path=Set5 (whole images, the literature's protocol: data.eval_size 0).
Launch: python launch.py --experiment=srresnet_div2k --workdir=/tmp/srresnet_div2k --config.data.path=DIR
Runtime: not run here (no download on this machine); 10^6 steps at batch 16.
Reproduces: the paper's SRResNet settings (B = 16 blocks of 64, 96x96 HR crops, batch 16, Adam 1e-4 with
  beta1 0.9, 10^6 updates; the paper trained on 350k ImageNet images, DIV2K is the common substitute), for
  Table 2's SRResNet rows (Set5 x4: 32.05 dB / 0.9019; Set14: 28.49 dB / 0.8184).
"""
from experiments import srgan_configs


def get_config():
  return srgan_configs.on_div2k(srgan_configs.srgan_config(objective="srresnet", steps=1_000_000))
