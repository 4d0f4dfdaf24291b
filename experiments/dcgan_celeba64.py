"""DCGAN on CelebA at 64x64 from TFDS: the DCGAN paper's own network (ngf = ndf = 64, batch 128).

Data: prepared TFDS celeb_a; `pip install -e .[prepare]` then `tfds build celeb_a --data_dir=DIR` (CelebA's
files must be downloaded manually, see the TFDS catalog), and --config.data.path=DIR here.
Launch: python launch.py --experiment=dcgan_celeba64 --workdir=/tmp/dcgan_celeba64 --config.data.path=DIR
Runtime: not run end to end here (no prepared CelebA). The step runs at 76 images/s on 2 idle CPU cores
  (`python benchmarks/train_step.py --experiment=dcgan_celeba64 --torch=false`), so the 20,000 default steps are
  ~9.3 h of steps on such a CPU; a GPU is the intended hardware.
Reproduces: the DCGAN paper reports samples, not a number, on faces; FID columns come with the metrics issue.
"""
from experiments import common
from gans.metrics import eval_config


def get_config():
  config = common.dcgan_config(resolution=64, channels=3, base_channels=64)
  config.data.source = "tfds"
  config.data.name = "celeb_a"
  config.train.steps = 20_000
  config.train.sample_every = 1000
  config.train.checkpoint_every = 2000
  # Needs --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth (see README, Evaluation);
  # reference: a fixed 50k of the 162k training faces, as FID50k-style numbers use.
  config.eval = eval_config.eval_config(eval_config.INCEPTION_METRICS, num_samples=10_000, num_reference=50_000)
  return config
