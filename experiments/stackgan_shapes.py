"""StackGAN on generated captioned shapes, Stage-I 32x32 then Stage-II 64x64, with its own char-CNN-RNN: offline.

Launch: python launch.py --experiment=stackgan_shapes --workdir=/tmp/stackgan_shapes
        (one command: the encoder, then Stage-I, then Stage-II with Stage-I frozen; rerun it to resume)
        python launch.py --experiment=stackgan_shapes --workdir=/tmp/stackgan_shapes --mode=sample \
            --caption="a large blue square at the bottom" --caption="a small red circle in the top left corner" \
            --num_samples=16 --pictures=stages     (stages.png: per caption a Stage-I row over a Stage-II row)
        python launch.py --experiment=stackgan_shapes --workdir=/tmp/stackgan_shapes --mode=eval \
            --config.model.sample_stage=1          (the caption metrics of the Stage-I pictures, upsampled)
Narrowed from the paper (64 -> 256, GF_DIM 128, DF_DIM 64, CONDITION_DIM 128, R_NUM 4, 1024-d char-CNN-RNN
embeddings): 32 -> 64, GF_DIM = 32 and DF_DIM = 16 (the official 2:1 ratio; Stage-I G's widest layer 256
channels), CONDITION_DIM 64, R_NUM 2, gan_int_cls_shapes's 128-d char-CNN-RNN trained first for 1000 steps, then
3000 Stage-I and 3000 Stage-II steps with the learning rate halved once, half-way through each stage (the paper
halves every 50 / 100 of 600 epochs).
Why GF_DIM 32: at GF_DIM = DF_DIM = 16 Stage-II collapsed to one grey picture in every run (README, "Stage-II
against Stage-I"); at 32 / 16 it did not in 1000 Stage-II steps (a probe from a Stage-I checkpoint at step 1300:
G2's pictures darkened from +0.06 to -0.83 against the real -0.95, coloured shapes near Stage-I's, D2's fake
logits -0.3 to -4.9 rather than running away).
Runtime: the default run at GF_DIM 32 took 1 h 49 min on the 2-core CPU, not idle (commit ea30f40): the encoder
at 2.65 steps/s, Stage-I 44 min beside one-core benchmarks, Stage-II 60 min at 0.85-1.06 steps/s.
Reproduces: the paper's Stage-II against Stage-I in miniature (more detail at the higher resolution, the
caption's attributes kept): `caption_accuracy/*` and `caption_classifier_fid` of the final (Stage-II) pictures in
eval.jsonl, and of the Stage-I ones with --config.model.sample_stage=1. Measured (README, "Stage-II against
Stage-I", seed 0): Stage-II's classifier-FID 1117 against Stage-I's 1744, count 0.74 against 0.755 and position
0.212 against 0.215 kept; kind, colour and size at chance in both stages (Stage-I did not learn them).
"""
from experiments import common, stackgan_configs

STAGE1_STEPS, STAGE2_STEPS = 3000, 3000


def get_config():
  config = stackgan_configs.stackgan_config(
      resolution=64, stage1_resolution=32, g_channels=32, d_channels=16, condition_dim=64, r_num=2,
      text_encoder="char_cnn_rnn", embedding_dim=128, stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS,
      stage1_decay_steps=STAGE1_STEPS // 2, stage2_decay_steps=STAGE2_STEPS // 2)
  common.use_captioned_shapes(config)
  config.train.steps += config.model.pretrain_steps
  return config
