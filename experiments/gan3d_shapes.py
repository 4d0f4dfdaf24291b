"""3D-GAN on procedural solids at 32^3 with layers 8x narrower than the paper's: the no-download default.

Launch: python launch.py --experiment=gan3d_shapes --workdir=/tmp/gan3d_shapes
Runtime: 400 steps (the default) in 32 min 40 s of wall time on 2 CPU cores shared with other jobs (load
  18-36: pessimistic), compilation included, 0.21-0.28 steps/s (seed 0, commit 7138887).
  Evaluation (also at the end of training): python launch.py --experiment=gan3d_shapes --workdir=/tmp/gan3d_shapes
  --mode=eval, the voxel_probe metric (~7 min there).
Result of that run: samples are lumpy blobs and fragments, no recognisable class yet (far too short a run);
  the linear probe on D's features (README, 3D-GAN) beats a random D's and raw voxels' at steps 200 and 400.
Reproduces: no published number (the paper trains on ShapeNet / evaluates on ModelNet); its settings
  (z 200, Adam b1 0.5, lr G 0.0025 / D 1e-5, batch 100, D updated only below 80% accuracy) on 7 classes of
  procedural solids (gans/data/voxels.py). Narrowed: 32^3 instead of 64^3 (one up/down layer fewer),
  channels / 8 (G 64 -> 32 -> 16 -> 1, D 16 -> 32 -> 64 -> 1; the paper's G 512 -> 256 -> 128 -> 64 -> 1,
  D 64 -> 128 -> 256 -> 512 -> 1) and batch 32 instead of 100.
"""
from experiments import gan3d_configs


def get_config():
  config = gan3d_configs.gan3d_config(resolution=32, channels=16)
  config.data.size = 10_000  # solids in the training set (element i is a pure function of (shapes_seed, i))
  config.train.batch_size = 32  # the paper's 100 costs 3x the time per step on a CPU
  # D's learning rate 1e-3 instead of the paper's 1e-5: in a run this short, with 1e-5, D stayed nearly where
  # it started and G fooled it within 25 steps (fake logits 7.1, G loss 0.001, D accuracy 45%).
  config.optim.d.learning_rate = 1e-3
  config.train.steps = 400
  config.train.log_every = 25
  config.train.sample_every = 100
  config.train.checkpoint_every = 100
  config.train.num_grid_samples = 16
  return config
