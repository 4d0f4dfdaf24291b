"""WaveGAN on the offline spoken digits (espeak-ng), narrowed for a CPU: d = 16, 8 kHz, 8192 samples.

Launch: python launch.py --experiment=wavegan_digits --workdir=/tmp/wavegan_digits
  (--config.model.phase_shuffle=0: the paper's ablation without phase shuffle; --config.model.post_filter=True:
  the appendix's post-processing filter). The first run synthesises 4000 clips with espeak-ng (apt-get install
  espeak-ng) into the data cache and trains the spoken-digit classifier of the evaluation, once.
Narrowed from the paper (Donahue et al. 2019): model size d = 16 instead of 64 (16x fewer multiply-adds per
  layer), 8 kHz instead of 16 kHz (clips of 8192 samples, 1.024 s; G starts from 8 samples instead of 16), 2000
  generator steps instead of ~200k. Everything else is the paper's: kernel 25, stride 4, phase shuffle n = 2,
  WGAN-GP (lambda 10), 5 D updates per G update, Adam(1e-4, 0.5, 0.9), batch 64, z ~ U[-1, 1]^100.
Runtime: not measured to the end: on the shared 2-core machine (load 13-25) the step compiled in 5 min 36 s
  and ran 0.10-0.17 steps/s (5 D + 1 G updates of batch 64 each), i.e. 3.3-5.5 h for 2000 steps there; 200
  steps reached an inception score of 1.25 (1.32 without phase shuffle; README, WaveGAN and SpecGAN).
Reproduces: the WaveGAN rows of the paper's Table 1 in miniature (inception score from a digit classifier,
  real clips far above the models, phase shuffle helping); SC09 numbers come from wavegan_sc09.
"""
from experiments import common


def get_config():
  config = common.audio_gan_config("wavegan", d=16, sample_rate=8000, clip_length=8192)
  config.train.steps = 2000
  config.train.log_every = 50
  config.train.sample_every = 500
  config.train.checkpoint_every = 500
  return config
