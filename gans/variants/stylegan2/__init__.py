"""StyleGAN2 (Karras et al. 2020) in Flax, exact to NVlabs' official networks.

layers.py   reusable blocks (equalised-lr dense/conv, FIR resampling, modulated conv, ...)
networks.py Generator (mapping + synthesis) and Discriminator, NHWC
convert.py  official state dicts <-> these modules: load_official, official_state_dict
training.py sampling, style mixing, path-length penalty, lazy regularisation, make(config)
"""
from gans.variants.stylegan2.convert import (
  OfficialStyleGAN2, infer_discriminator_config, infer_generator_config, load_official, official_state_dict)
from gans.variants.stylegan2.networks import (
  Discriminator, Generator, MappingNetwork, SynthesisNetwork, block_resolutions, channels_from_base, num_ws_for,
  truncate)
from gans.variants.stylegan2.training import (
  MODEL_DEFAULTS, PL_BATCH_SHRINK, PL_DECAY, PL_INTERVAL, PL_WEIGHT, R1_INTERVAL, STYLE_MIXING_PROB, W_AVG_BETA,
  ema_decay_for, generate_for_training, generator_sample, initial_model_state, lazy_optimizer_settings,
  lazy_regularization, make, mix_styles, model_settings, one_hot_labels, path_length_penalty, training_ws,
  update_w_avg)
