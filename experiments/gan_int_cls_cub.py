"""GAN-INT-CLS on CUB-200 birds at 64x64 with the released char-CNN-RNN embeddings: the paper's settings.

Launch: python launch.py --experiment=gan_int_cls_cub --workdir=/tmp/gic_cub --config.data.path=DIR
DIR is StackGAN's birds/ layout (gans/data/captions.py, caption_folder: train/filenames.pickle,
train/char-CNN-RNN-embeddings.pickle, text_c10/, CUB_200_2011/); the embeddings are 1024-d, 10 per image.
Paper settings: 64x64, ngf = ndf = 64, z 100-d, the embedding projected to 128-d, Adam(2e-4, b1 0.5), batch 64,
objective gan-int-cls, beta = 0.5; the paper trains 600 epochs (of 8,855 images: ~83,000 steps). Typed
captions cannot be sampled (the released encoder's weights are not read here); sampling takes embeddings.
Runtime: not measured (the dataset is not on this machine); its one-step test runs on synthetic batches.
Reproduces: Reed et al. 2016's CUB model (their Fig. 3/4 qualitative results; the paper reports no numbers).
"""
from experiments import gan_int_cls_configs


def get_config():
  config = gan_int_cls_configs.gan_int_cls_config(resolution=64, base_channels=64, text_encoder="precomputed",
                                                  embedding_dim=1024)
  config.data.source = "caption_folder"
  config.data.path = ""
  config.data.channels = 3
  config.data.resolution = 64
  config.data.embedding_file = "char-CNN-RNN-embeddings.pickle"
  config.train.steps = 83_000
  config.train.log_every = 200
  config.train.sample_every = 2000
  config.train.checkpoint_every = 2000
  return config
