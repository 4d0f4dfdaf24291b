"""3D-GAN with the paper's settings on ModelNet10 (64^3, 512 -> 256 -> 128 -> 64 -> 1), from --config.data.path.

Launch: python launch.py --experiment=gan3d_modelnet10 --workdir=/tmp/gan3d_mn10 \
          --config.data.path=/data/ModelNet10
  (the unzipped ModelNet10 folder, <class>/train/*.off; the meshes are voxelised at 64^3 on reading).
Runtime: not run end to end (no ModelNet10 here). One batch-100 step takes ~48 s on a 2-core AVX-512 CPU
  (`python benchmarks/train_step.py --experiment=gan3d_modelnet10 --batch_size=100 --side=separate`: 2.05-2.08
  volumes/s, commit e072e69), so the 20,000 steps would take ~11 days there: a GPU job.
Reproduces: the paper's generator and training (Wu et al. 2016, sec. 3); its Table 1 classifies ModelNet10
  with a linear SVM on D's features at 91.0% (the paper trained on ShapeNet chairs/cars/...; here on
  ModelNet10's own training meshes); the voxel_probe metric at the end and with --mode=eval probes D's
  features on the folder's train split and tests on its test split.
"""
from experiments import gan3d_configs


def get_config():
  config = gan3d_configs.gan3d_config(resolution=64, channels=64)
  config.data.source = "voxel_folder"
  config.data.path = ""  # the ModelNet10 folder
  config.data.split = "train"
  config.train.steps = 20_000
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  config.train.num_grid_samples = 16
  return config
