"""GAN-INT-CLS on CUB-200 birds at 64x64 with the released char-CNN-RNN embeddings: the paper's settings.

Launch: python launch.py --experiment=gan_int_cls_cub --workdir=/tmp/gic_cub --config.data.path=DIR
DIR is StackGAN's birds/ layout (gans/data/captions.py, caption_folder: train/filenames.pickle,
train/char-CNN-RNN-embeddings.pickle, text_c10/, CUB_200_2011/); the embeddings are 1024-d, 10 per image.
Images from TFDS instead (gans/data/tfds_captions.py; prepared once with pip install -e '.[prepare]' &&
tfds build caltech_birds2011 --file_format=array_record):
        python launch.py --experiment=gan_int_cls_cub --workdir=/tmp/gic_cub --config.data.source=tfds_captions \
            --config.data.caption_path=DIR
  DIR holds text_c10/ and StackGAN's birds/train and birds/test folders (their embeddings cover every CUB image);
  data.name = caltech_birds2011, data.split its split (CUB's own image split: "train" = 5,994 images, not the
  paper's 150-class split of 8,855, which caption_folder reads), data.path the TFDS data_dir ("" = default).
Sampling: --mode=sample --caption="..." draws a caption of the dataset's caption files (case and whitespace
ignored) from its released embedding; any other caption is refused, since the released Torch7 encoder cannot run
here (--embeddings=FILE.npy [N, 1024] takes embeddings made elsewhere; --config.model.text_encoder=char_cnn_rnn
trains an encoder that reads any caption).
Paper settings: 64x64, ngf = ndf = 64, z 100-d, the embedding projected to 128-d, Adam(2e-4, b1 0.5), batch 64,
objective gan-int-cls, beta = 0.5; the paper trains 600 epochs (of 8,855 images: ~83,000 steps).
Runtime: not measured (the dataset is not on this machine); its one-step test runs on synthetic batches.
Reproduces: Reed et al. 2016's CUB model (their Fig. 3/4 qualitative results; the paper reports no numbers).
"""
from experiments import gan_int_cls_configs


def get_config():
  config = gan_int_cls_configs.gan_int_cls_config(resolution=64, base_channels=64, text_encoder="precomputed",
                                                  embedding_dim=1024)
  config.data.source = "caption_folder"  # or "tfds_captions" (see above)
  config.data.path = ""
  config.data.name = "caltech_birds2011"  # tfds_captions only
  config.data.caption_path = ""  # tfds_captions only: text_c10/ + StackGAN's train/ and test/
  config.data.channels = 3
  config.data.resolution = 64
  config.data.embedding_file = "char-CNN-RNN-embeddings.pickle"
  config.train.steps = 83_000
  config.train.log_every = 200
  config.train.sample_every = 2000
  config.train.checkpoint_every = 2000
  return config
