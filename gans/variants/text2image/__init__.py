"""Text to image: StackGAN (Zhang et al. 2017); GAN-INT-CLS (Reed et al. 2016) to follow.

networks.py  the official StackGAN-Pytorch networks (CA_NET, STAGE1_G/D, STAGE2_G/D), NHWC
convert.py   official state dicts and cfg values -> these modules: load_official
"""
