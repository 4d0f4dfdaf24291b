"""SpecGAN on the offline spoken digits (espeak-ng), narrowed for a CPU: d = 16, 8 kHz, 128 frames x 64 bins.

Launch: python launch.py --experiment=specgan_digits --workdir=/tmp/specgan_digits
  The first run synthesises the clips (apt-get install espeak-ng), computes the spectrogram moments of all 4000
  clips and trains the evaluation's spoken-digit classifier, each once, into the data cache.
Narrowed from the paper (Donahue et al. 2019): model size d = 16 instead of 64, 8 kHz instead of 16 kHz (the
  16 ms window is 128 samples, so spectrograms are 128 frames x 64 bins instead of 128 x 128; G starts from
  4 x 2), 2000 generator steps. The rest is the paper's: 5x5 stride-2 convs, per-bin normalisation clipped to
  3 std, WGAN-GP (lambda 10), 5 D updates per G update, Adam(1e-4, 0.5, 0.9), batch 64, Griffin-Lim with 16
  iterations for the audio.
Runtime: not measured to the end. benchmarks/train_step.py times one D and one G update of batch 64 at 54 clips/s
  against the PyTorch reference's 12.9 (4.2x, load average 7-15 on the shared 2-core machine; 3.6 clips/s
  before small convs became matmuls, gans.layers.conv_stride1); a training step runs 5 D + 1 G updates.
  Training ran 0.48 steps/s with the 2 cores to itself (commit 0728a0f); 300 steps reached an inception
  score of 3.04 (README, WaveGAN and SpecGAN), so the 2000 steps take ~70 min there.
Reproduces: the SpecGAN row of the paper's Table 1 in miniature (SpecGAN above WaveGAN in inception score).
"""
from experiments import common


def get_config():
  config = common.audio_gan_config("specgan", d=16, sample_rate=8000, clip_length=8192)
  config.train.steps = 2000
  config.train.log_every = 50
  config.train.sample_every = 500
  config.train.checkpoint_every = 500
  return config
