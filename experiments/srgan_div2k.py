"""SRGAN-VGG54 with the paper's settings (Ledig et al. 2017) on TFDS div2k/bicubic_x4, SRResNet pretraining first.

Data: as srresnet_div2k (--config.data.path=TFDS_DIR; --config.data.eval_path=Set5 for the literature's sets).
VGG: torchvision's vgg19-dcbccbbe.pth (https://download.pytorch.org/models/vgg19-dcbccbbe.pth),
  --config.model.vgg_weights=FILE; --config.model.content=mse|vgg22 for Table 1's other rows.
Launch: python launch.py --experiment=srgan_div2k --workdir=/tmp/srgan_div2k --config.data.path=DIR
  --config.model.vgg_weights=vgg19-dcbccbbe.pth
Runtime: not run here (no download on this machine); 1.2 x 10^6 steps at batch 16.
Two phases of one run: 10^6 steps of SRResNet-MSE (g_pretrain), then 2 x 10^5 SRGAN steps, 10^5 at 1e-4 and
  10^5 at 1e-5 (the paper's schedule), content vgg54 + 1e-3 adversarial.
Reproduces: Table 2's SRGAN rows (Set5 x4: 29.40 dB / 0.8472, below SRResNet, with the best MOS).
"""
from experiments import srgan_configs


def get_config():
  return srgan_configs.on_div2k(srgan_configs.srgan_config(objective="srgan", content="vgg54", steps=1_200_000, pretrain_steps=1_000_000))
