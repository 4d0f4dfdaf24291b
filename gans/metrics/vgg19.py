"""VGG19 features for SRGAN's content losses, from torchvision's ImageNet weights read without torch.

The weights are torchvision's `vgg19-dcbccbbe.pth` (VGG19_Weights.IMAGENET1K_V1, URL below), a state dict whose
convolutions are `features.<i>.weight` (OIHW) and `features.<i>.bias` at the indices of torchvision's
`features` Sequential for configuration "E": each conv is followed by its ReLU, and the five max-pools sit
at 4, 9, 18, 27 and 36. Only the convolutions up to the requested layer are read.

Ledig et al. 2017 (sec. 2.2.2) define phi_{i,j} as the feature map "obtained by the j-th convolution (after
activation) before the i-th maxpooling layer": "2_2" is the ReLU after conv2_2 (features index 8), "5_4" the
ReLU after conv5_4 (features index 35). Inputs are images in [0, 1], normalised with ImageNet's mean and
standard deviation as torchvision's weights expect. The paper rescales the feature maps by 1/12.75 so that
the VGG losses are on the scale of the MSE loss (a factor of about 0.006 on the squared error).
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbccbbe.pth"
VGG19_FILE = "vgg19-dcbccbbe.pth"
# torchvision's cfgs["E"]: conv widths, "M" a 2x2 max-pool.
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_RESCALE = 1.0 / 12.75  # Ledig et al. 2017, sec. 3.2
LAYERS = ("2_2", "5_4")


class MissingVGGWeightsError(FileNotFoundError):
  pass


def conv_names(config=VGG19_CONFIG) -> list[tuple[str, int, int]]:
  """[(name "i_j", features index, width)] of every conv in torchvision's features Sequential."""
  names, index, block, conv = [], 0, 1, 1
  for entry in config:
    if entry == "M":
      index, block, conv = index + 1, block + 1, 1
    else:
      names.append((f"{block}_{conv}", index, entry))
      index, conv = index + 2, conv + 1  # the conv and its ReLU
  return names


def convs_up_to(layer: str, config=VGG19_CONFIG) -> list[tuple[str, int, int]]:
  names = conv_names(config)
  valid = [name for name, _, _ in names]
  if layer not in valid:
    raise ValueError(f"No VGG19 layer {layer!r}; valid: {', '.join(valid)} (the paper uses {', '.join(LAYERS)}).")
  return names[:valid.index(layer) + 1]


def params_from_state_dict(state_dict, layer: str, config=VGG19_CONFIG) -> dict:
  """{"i_j": {"kernel": HWIO, "bias": [O]}} of the convs up to `layer` from a torchvision state dict."""
  params = {}
  for name, index, _ in convs_up_to(layer, config):
    weight_name = f"features.{index}.weight"
    if weight_name not in state_dict:
      raise ValueError(f"The VGG19 state dict has no {weight_name!r} (conv{name}); is it torchvision's vgg19?")
    params[name] = {"kernel": np.transpose(np.asarray(state_dict[weight_name], np.float32), (2, 3, 1, 0)),
                    "bias": np.asarray(state_dict[f"features.{index}.bias"], np.float32)}
  return params


def weights_path(path: str, field: str = "config.model.vgg_weights") -> str:
  """`path`, checked to exist: the one error a user without the weights sees."""
  if not path or not os.path.isfile(path):
    where = f"{field}={path!r} is not a file" if path else f"{field} is unset"
    raise MissingVGGWeightsError(
        f"The VGG content losses (vgg22, vgg54) need torchvision's VGG19 ImageNet weights and {where}. Download "
        f"{VGG19_FILE} ({VGG19_URL}) and pass --{field}=FILE, or use the content loss mse.")
  return path


def load_params(path: str, layer: str) -> dict:
  from gans.metrics import torch_pickle  # pylint: disable=import-outside-toplevel
  return params_from_state_dict(torch_pickle.load(weights_path(path)), layer)


def features(params: dict, images_NHWC: jax.Array, layer: str) -> jax.Array:
  """phi at `layer` (after its ReLU, before the next pool) of images in [0, 1], not yet rescaled."""
  x = (images_NHWC - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
  block = 1
  for name in [name for name, _, _ in convs_up_to(layer)]:
    if int(name.split("_")[0]) != block:  # a new block starts after a 2x2 max-pool
      block = int(name.split("_")[0])
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    kernel = jnp.asarray(params[name]["kernel"], x.dtype)
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = jax.nn.relu(x + jnp.asarray(params[name]["bias"], x.dtype))
  return x


def content_loss(params: dict, outputs_NHWC: jax.Array, targets_NHWC: jax.Array, layer: str) -> jax.Array:
  """The paper's l_VGG/i.j: mean squared difference of the rescaled feature maps of images in [-1, 1]."""
  to_unit = lambda x: (x + 1.0) / 2.0
  phi_out = features(params, to_unit(outputs_NHWC), layer) * FEATURE_RESCALE
  phi_target = features(params, to_unit(targets_NHWC), layer) * FEATURE_RESCALE
  return jnp.mean(jnp.square(phi_out - phi_target))
