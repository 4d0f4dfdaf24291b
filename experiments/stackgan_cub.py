"""StackGAN on CUB-200 birds, Stage-I 64x64 then Stage-II 256x256, with the released char-CNN-RNN embeddings.

Launch: python launch.py --experiment=stackgan_cub --workdir=/tmp/stackgan_cub --config.data.path=DIR
DIR is StackGAN's birds/ layout (gans/data/captions.py, caption_folder: train/filenames.pickle,
train/char-CNN-RNN-embeddings.pickle, text_c10/, CUB_200_2011/); the embeddings are 1024-d, 10 per image.
One run trains Stage-I (data.resolution 256 pictures box-averaged to 64) for 600 epochs, then Stage-II for 600
more with Stage-I frozen. Settings: StackGAN-Pytorch's defaults for birds (code/miscc/config.py: batch 64, Z_DIM
100, GF_DIM 128, DF_DIM 64, CONDITION_DIM 128, R_NUM 4, TEXT.DIMENSION 1024, Adam(2e-4, 0.5), COEFF.KL 2.0).
That repository ships cfg files for COCO only and its default LR_DECAY_EPOCH (600) never decays; the authors'
birds cfgs (hanzhanggit/StackGAN, stageI/cfg/birds.yml and stageII/cfg/birds.yml: 600 epochs each, the
Stage-II run starting from Stage-I's model_82000) halve the learning rate every 50 (Stage-I) and 100 (Stage-II)
epochs, used here. An official epoch reads each of the 8,855 training images once (one of its 10 embeddings at
random): 138 steps of 64, so 600 epochs are 82,800 steps, the decays every 6,900 and 13,800 steps.
Typed captions cannot be sampled (the released encoder's weights are not read here); sampling takes embeddings.
Runtime: not measured (the dataset is not on this machine); its one-step test runs on synthetic batches.
Reproduces: Zhang et al. 2017's CUB model (the paper: Inception score 3.70 on CUB at 256x256; not measured here).
"""
from experiments import stackgan_configs

STEPS_PER_EPOCH = 8855 // 64  # the official loader drops the last partial batch
EPOCHS = 600


def get_config():
  stage_steps = EPOCHS * STEPS_PER_EPOCH
  config = stackgan_configs.stackgan_config(
      resolution=256, stage1_resolution=64, g_channels=128, d_channels=64, condition_dim=128, r_num=4,
      text_encoder="precomputed", embedding_dim=1024, stage1_steps=stage_steps, stage2_steps=stage_steps,
      stage1_decay_steps=50 * STEPS_PER_EPOCH, stage2_decay_steps=100 * STEPS_PER_EPOCH)
  config.data.source = "caption_folder"
  config.data.path = ""
  config.data.embedding_file = "char-CNN-RNN-embeddings.pickle"
  config.train.log_every = 200
  config.train.sample_every = 2000
  config.train.checkpoint_every = 2000
  return config
