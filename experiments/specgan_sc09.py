"""SpecGAN on SC09 (the ten digit words of Speech Commands) with the paper's settings: d = 64, 16 kHz, 16384 samples.

Launch: python launch.py --experiment=specgan_sc09 --workdir=/runs/specgan_sc09 --config.data.path=DIR
  DIR: the Speech Commands release unpacked (its zero/ ... nine/ folders are kept, the other words skipped) or
  the SC09 release's folder of Zero_*.wav ... files. TFDS's speech_commands cannot serve: it labels the digit
  words "_unknown_" (gans/data/audio.py).
Settings: Donahue et al. 2019, Table 1's SpecGAN: WGAN-GP (lambda 10), 5 D updates per G update, Adam(1e-4, 0.5,
  0.9), batch 64, z ~ U[-1, 1]^100, spectrogram moments of 10,000 clips; the paper trained ~200k steps
  (WaveGAN) on one GPU for days.
Runtime: not run here (no SC09 on this machine; a CPU would need weeks).
Reproduces: the paper's SC09 inception scores (Table 1): real clips 9.18 (train) and 8.01 (test), WaveGAN
  4.12 without and 4.67 with phase shuffle, SpecGAN 6.03 (their classifier; ours is the project's own, so
  only the order compares).
"""
from experiments import common


def get_config():
  config = common.use_sc09(common.audio_gan_config("specgan", d=64))
  config.train.steps = 200_000
  config.train.log_every = 100
  config.train.sample_every = 5000
  config.train.checkpoint_every = 5000
  config.train.eval_every = 20_000
  return config
