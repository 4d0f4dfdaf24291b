"""SRResNet / SRGAN: the networks, the content losses, VGG19 from torchvision's file, the data and the SR metrics."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import experiments
from gans import evaluation, run, sampling, steps, trainer
from gans.data import super_resolution as sr_data
from gans.data import tfds_source
from gans.data.errors import DatasetNotFoundError
from gans.metrics import super_resolution, vgg19
from gans.variants import srgan
from test_training import assert_four_devices_give_the_numbers_of_one, one_step, tiny_config

# A VGG19 of torchvision's layout with narrow convs: block widths 2, 3, 4, 4, 4 (and 3 input channels).
TINY_VGG = (2, 2, "M", 3, 3, "M", 4, 4, 4, 4, "M", 4, 4, 4, 4, "M", 4, 4, 4, 4, "M")


# ----------------------------------------------------------------------------- networks

def test_pixel_shuffle_is_its_definition():
  r, c = 2, 3
  x = np.random.default_rng(0).normal(size=(2, 3, 4, c * r * r)).astype(np.float32)
  y = np.asarray(srgan.pixel_shuffle(jnp.asarray(x), r))
  expected = np.zeros((2, 3 * r, 4 * r, c), np.float32)
  for h in range(3):
    for w in range(4):
      for ch in range(c):
        for i in range(r):
          for j in range(r):
            expected[:, h * r + i, w * r + j, ch] = x[:, h, w, ch * r * r + i * r + j]
  np.testing.assert_array_equal(y, expected)


def test_pixel_shuffle_equals_pytorchs():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(1).normal(size=(2, 3, 5, 12)).astype(np.float32)
  expected = torch.nn.PixelShuffle(2)(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(np.asarray(srgan.pixel_shuffle(jnp.asarray(x), 2)), expected)


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_the_papers_networks_have_their_shapes_and_parameter_counts():
  generator, discriminator = srgan.SRResNet(), srgan.Discriminator()
  lr = jax.ShapeDtypeStruct((1, 24, 24, 3), jnp.float32)
  g_vars = jax.eval_shape(lambda x: generator.init(jax.random.key(0), x), lr)
  assert jax.eval_shape(generator.apply, g_vars, lr).shape == (1, 96, 96, 3)
  # Closed form: 9x9 conv 3->64 + PReLU; 16 blocks of two (3x3 conv 64->64 without bias + BN) and a PReLU;
  # conv + BN; two (3x3 conv 64->256, PReLU of 64); 9x9 conv 64->3.
  conv = lambda k, i, o: k * k * i * o + o
  conv_bn = 3 * 3 * 64 * 64 + 2 * 64
  expected = conv(9, 3, 64) + 64 + 16 * (2 * conv_bn + 64) + conv_bn + 2 * (conv(3, 64, 256) + 64) + conv(9, 64, 3)
  assert _count(g_vars["params"]) == expected
  hr = jax.ShapeDtypeStruct((2, 96, 96, 3), jnp.float32)
  d_vars = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x), hr)
  widths = [d_vars["params"][f"Conv_{i}"]["kernel"].shape for i in range(8)]
  assert widths == [(3, 3, i, o) for i, o in [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
                                               (256, 512), (512, 512)]]
  assert d_vars["params"]["Dense_0"]["kernel"].shape == (6 * 6 * 512, 1024)  # four stride-2 convs: 96 -> 6
  assert jax.eval_shape(discriminator.apply, d_vars, hr).shape == (2,)


def test_prelu_has_a_slope_per_channel():
  x = jnp.array([[-2.0, 3.0], [1.0, -4.0]])
  variables = {"params": {"slope": jnp.array([0.5, 0.25])}}
  np.testing.assert_allclose(srgan.PReLU().apply(variables, x), [[-1.0, 3.0], [1.0, -1.0]])


# ----------------------------------------------------------------------------- VGG19 and the content losses

def _hand_vgg_params():
  """Every conv a 1x1-like centre tap passing channel 0 through: phi_2_2 = maxpool2(relu((R - mean) / std))."""
  params = {}
  for name, _, _ in vgg19.convs_up_to("2_2"):
    kernel = np.zeros((3, 3, 3 if name == "1_1" else 1, 1), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    params[name] = {"kernel": kernel, "bias": np.zeros(1, np.float32)}
  return params


def test_vgg_features_of_a_hand_computed_network():
  images = np.random.default_rng(2).uniform(size=(2, 8, 6, 3)).astype(np.float32)
  red = np.maximum((images[..., 0] - vgg19.IMAGENET_MEAN[0]) / vgg19.IMAGENET_STD[0], 0.0)
  expected = red.reshape(2, 4, 2, 3, 2).max(axis=(2, 4))
  features = vgg19.features(_hand_vgg_params(), jnp.asarray(images), "2_2")
  np.testing.assert_allclose(np.asarray(features)[..., 0], expected, rtol=1e-5, atol=1e-6)


def test_content_losses_on_tiny_inputs():
  rng = np.random.default_rng(3)
  a, b = (rng.uniform(-1, 1, size=(2, 8, 8, 3)).astype(np.float32) for _ in range(2))
  np.testing.assert_allclose(srgan.content_loss_fn("mse")(a, b), np.mean((a - b) ** 2), rtol=1e-6)
  params = _hand_vgg_params()
  phi = lambda x: np.maximum(((x[..., 0] + 1) / 2 - 0.485) / 0.229, 0).reshape(2, 4, 2, 4, 2).max(axis=(2, 4))
  expected = np.mean(((phi(a) - phi(b)) / 12.75) ** 2)
  vgg22 = srgan.content_loss_fn("vgg22", params)
  np.testing.assert_allclose(vgg22(a, b), expected, rtol=1e-5)
  assert float(vgg22(a, a)) == 0.0


def test_a_vgg_loss_without_the_weights_file_says_where_to_get_it():
  config = tiny_config("srgan_photos")
  with config.unlocked():
    config.model.content = "vgg54"
  with pytest.raises(vgg19.MissingVGGWeightsError, match="vgg19-dcbccbbe.pth.*config.model.vgg_weights"):
    srgan.make(config)
  with pytest.raises(vgg19.MissingVGGWeightsError, match=vgg19.VGG19_URL):
    srgan.make(config)


def _torch_vgg(torch, config):
  layers, channels = [], 3
  for entry in config:
    if entry == "M":
      layers.append(torch.nn.MaxPool2d(2, 2))
    else:
      layers += [torch.nn.Conv2d(channels, entry, 3, padding=1), torch.nn.ReLU(inplace=True)]
      channels = entry
  return torch.nn.Sequential(*layers)


def test_vgg_features_from_a_torchvision_layout_file_equal_pytorchs(tmp_path):
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  features = _torch_vgg(torch, TINY_VGG)
  state_dict = {f"features.{k}": v for k, v in features.state_dict().items()}  # torchvision's VGG keys
  path = tmp_path / "vgg19-tiny.pth"
  torch.save(state_dict, path)
  images = np.random.default_rng(4).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  normalised = (images - np.array(vgg19.IMAGENET_MEAN)) / np.array(vgg19.IMAGENET_STD)
  x = torch.from_numpy(normalised.astype(np.float32).transpose(0, 3, 1, 2))
  for layer, last_index in (("2_2", 8), ("5_4", 35)):
    with torch.no_grad():
      expected = features[:last_index + 1](x).numpy().transpose(0, 2, 3, 1)
    ours = vgg19.features(vgg19.load_params(str(path), layer), jnp.asarray(images), layer)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4, atol=1e-5)


def test_srgan_with_a_vgg_content_loss_takes_a_step(tmp_path, monkeypatch):
  rng, state_dict, inputs = np.random.default_rng(5), {}, 3
  for _, index, width in vgg19.conv_names(TINY_VGG):
    state_dict[f"features.{index}.weight"] = rng.normal(size=(width, inputs, 3, 3)).astype(np.float32) * 0.3
    state_dict[f"features.{index}.bias"] = np.zeros(width, np.float32)
    inputs = width
  path = tmp_path / "vgg.npz"
  np.savez(path, **state_dict)
  config = tiny_config("srgan_photos")
  with config.unlocked():
    config.model.content, config.model.vgg_weights = "vgg22", str(path)
  # The torch-free reader takes .pth files, which need torch to write; the same state dict from an .npz here.
  monkeypatch.setattr(vgg19, "load_params", lambda p, layer: vgg19.params_from_state_dict(dict(np.load(p)), layer))
  variant = srgan.make(config)
  params, model_state = variant.init(jax.random.key(0))
  hr = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3), minval=-1.0, maxval=1.0)
  g_main = [phase for phase in variant.phases if phase.name == "g_main"][0]
  prepared = variant.prepare(params, model_state, {"image": hr}, jax.random.key(3), ("g_main",))  # G(LR), once
  loss, (metrics, _) = jax.jit(g_main.loss)(params, model_state, prepared, jax.random.key(2))
  sr, _ = jax.jit(lambda p: srgan.common.apply_module(variant.modules["g"], p["g"], model_state["g"],
                                                      srgan.low_resolution({"image": hr}), train=True))(params)
  expected = vgg19.content_loss(model_state["vgg"], sr, hr, "2_2")
  np.testing.assert_allclose(metrics["content"], expected, rtol=1e-5)
  assert float(metrics["content"]) > 0 and float(loss) > float(metrics["content"])  # + the adversarial term
  assert model_state["vgg"]["2_2"]["kernel"].shape == (3, 3, 3, 3)


@pytest.mark.parametrize("name", ["srgan_photos", "srgan_div2k"])
def test_the_torch_reference_has_our_parameter_counts(name):
  pytest.importorskip("torch")
  from benchmarks import torch_srgan  # pylint: disable=import-outside-toplevel
  config = experiments.get_config(name)
  with config.unlocked():
    config.model.content = "mse"  # the reference's content loss (the VGG ones need torchvision's weights)
    config.train.batch_size = 1
  params, _ = jax.eval_shape(srgan.make(config).init, jax.random.key(0))
  step = torch_srgan.make_torch_srgan_step(config)
  assert set(step.networks) == set(params)
  for group, net in step.networks.items():
    ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params[group]))
    assert torch_srgan.parameter_count(net) == ours > 0, group
  assert all(np.isfinite(v) for v in step().values())


# ----------------------------------------------------------------------------- training

def test_srgan_on_four_devices_gives_the_numbers_of_one():
  metrics, _ = assert_four_devices_give_the_numbers_of_one(tiny_config("srgan_photos"))
  assert {"d_main/loss", "g_main/adversarial", "g_main/content"} <= set(metrics)


def test_srgan_pretrains_as_srresnet_before_the_gan_phases():
  config = tiny_config("srgan_photos")
  with config.unlocked():
    config.model.pretrain_steps = 5
  phases = srgan.make(config).phases
  assert [(p.name, p.start, p.stop) for p in phases] == [("g_pretrain", 0, 5), ("d_main", 5, None),
                                                         ("g_main", 5, None)]
  srresnet = tiny_config("srresnet_photos")
  assert [p.name for p in srgan.make(srresnet).phases] == ["g_main"]


def test_the_metric_on_held_out_photos_beside_bicubic():
  config = tiny_config("srresnet_photos")
  with config.unlocked():
    config.data.eval_size = 32
  setup = run.Setup(config, num_devices=1)
  generate = lambda n, **conditioning: setup.generate(setup.initial_state, n, **conditioning)
  results = evaluation.EVALUATORS["super_resolution"](config, generate)
  assert results["super_resolution_count"] == len(sr_data.PHOTOS_HELD_OUT)
  assert len(results["super_resolution_psnr_per_image"]) == 3
  # An untrained G is far from the images; bicubic upsampling of the same inputs is close.
  assert results["super_resolution_bicubic_psnr"] > results["super_resolution_psnr"] + 5
  assert results["super_resolution_bicubic_sharpness"] < 1.0
  grid = setup.grid(setup.initial_state)
  assert grid.shape == (3, 3, 32, 32, 3)


def test_the_metric_reads_an_evaluation_folder_at_full_size(tmp_path):
  config = tiny_config("srresnet_photos")
  with config.unlocked():
    config.data.eval_path = str(_write_images(tmp_path / "set2", [(22, 29), (24, 20)]))
    config.data.eval_size = 0  # whole images, cut to multiples of 4
  pairs = sr_data.held_out_pairs(config.data, 10)
  assert [(lr.shape, hr.shape) for lr, hr in pairs] == [((5, 7, 3), (20, 28, 3)), ((6, 5, 3), (24, 20, 3))]
  setup = run.Setup(config, num_devices=1)
  generate = lambda n, **conditioning: setup.generate(setup.initial_state, n, **conditioning)
  results = evaluation.EVALUATORS["super_resolution"](config, generate)
  assert results["super_resolution_count"] == 2
  np.testing.assert_allclose(results["super_resolution_bicubic_psnr"],
                             np.mean(results["super_resolution_bicubic_psnr_per_image"]))
  bicubic = np.asarray(sr_data.upsample_bicubic(pairs[1][0][None], (24, 20))) * 2 - 1
  np.testing.assert_allclose(results["super_resolution_bicubic_psnr_per_image"][1],
                             super_resolution.psnr_y(bicubic, pairs[1][1][None])[0])


# ----------------------------------------------------------------------------- metrics

def test_y_channel_is_matlabs_rgb2ycbcr():
  color = pytest.importorskip("skimage.color")
  rgb = np.random.default_rng(6).integers(0, 256, size=(1, 5, 4, 3)) / 255.0
  expected = color.rgb2ycbcr(rgb[0])[..., 0]
  np.testing.assert_allclose(super_resolution.y_channel(rgb * 2 - 1)[0], expected, rtol=1e-10, atol=1e-9)


def test_psnr_of_grey_levels_by_hand_and_the_border_protocol():
  target = np.full((1, 16, 16, 3), 110 / 127.5 - 1)
  output = np.full((1, 16, 16, 3), 100 / 127.5 - 1)
  difference = 10 * 219 / 255  # Y of grey v/255 is 16 + 219 v/255
  np.testing.assert_allclose(super_resolution.psnr_y(output, target), 10 * np.log10(255 ** 2 / difference ** 2))
  border_only = target.copy()
  border_only[:, :4] = output[:, :4]
  border_only[:, :, -4:] = output[:, :, -4:]
  assert super_resolution.psnr_y(border_only, target)[0] == np.inf  # the 4-pixel border is not compared
  assert np.isfinite(super_resolution.psnr_y(border_only, target, border=0)[0])


def test_psnr_and_ssim_equal_scikit_images_on_the_cropped_y_channel():
  metrics = pytest.importorskip("skimage.metrics")
  rng = np.random.default_rng(7)
  target = rng.integers(0, 256, size=(2, 24, 20, 3)) / 127.5 - 1
  output = np.clip(target + rng.normal(0, 0.1, size=target.shape), -1, 1)
  y_out = super_resolution.y_channel(output)[:, 4:-4, 4:-4]
  y_target = super_resolution.y_channel(target)[:, 4:-4, 4:-4]
  for i in range(2):
    np.testing.assert_allclose(super_resolution.psnr_y(output, target)[i],
                               metrics.peak_signal_noise_ratio(y_target[i], y_out[i], data_range=255), rtol=1e-10)
    expected_ssim = metrics.structural_similarity(y_target[i], y_out[i], data_range=255, gaussian_weights=True,
                                                  sigma=1.5, use_sample_covariance=False)
    np.testing.assert_allclose(super_resolution.ssim_y(output, target)[i], expected_ssim, rtol=1e-6)


def test_sharpness_is_one_for_the_target_and_lower_for_bicubic():
  target = np.kron(np.indices((8, 8)).sum(axis=0) % 2 * 2.0 - 1.0, np.ones((4, 4)))[None, :, :, None]
  target = np.repeat(target, 3, axis=-1)
  lr = sr_data.downscale(jnp.asarray(target))
  bicubic = np.asarray(sr_data.upsample_bicubic(lr, (32, 32))) * 2 - 1
  results = super_resolution.metrics(target, bicubic, target)
  assert results["sharpness"] == 1.0 and results["psnr"] == np.inf
  assert results["bicubic_sharpness"] < 0.5


# ----------------------------------------------------------------------------- data

def test_downscaling_keeps_flat_images_and_makes_8_bit_lr():
  hr = jnp.full((1, 16, 8, 3), 0.2)
  lr = np.asarray(sr_data.downscale(hr))
  assert lr.shape == (1, 4, 2, 3)
  np.testing.assert_allclose(lr, np.round(0.6 * 255) / 255, rtol=1e-6)


def _write_images(directory, sizes):
  directory.mkdir()
  rng = np.random.default_rng(8)
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(directory / f"{i}.png")
  return directory


def test_folder_crops_are_pieces_of_the_images(tmp_path):
  directory = _write_images(tmp_path / "hr", [(20, 30), (24, 16)])
  config = ml_collections.ConfigDict({"source": "sr_folder", "path": str(directory), "resolution": 12,
                                      "size": 50, "crop_seed": 3})
  source = sr_data.make_folder(config)
  assert len(source) == 50
  for index in (0, 1, 7):
    image, top, left = source.offset(index)
    pixels = np.asarray(Image.open(directory / f"{image}.png"))
    np.testing.assert_allclose(source[index]["image"], pixels[top:top + 12, left:left + 12] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(source[index]["image"], sr_data.make_folder(config)[index]["image"])


def test_folder_errors(tmp_path):
  (tmp_path / "empty").mkdir()
  config = ml_collections.ConfigDict({"path": str(tmp_path / "empty"), "resolution": 12})
  with pytest.raises(DatasetNotFoundError, match="holds no images"):
    sr_data.make_folder(config)
  config.path = str(_write_images(tmp_path / "small", [(20, 30), (10, 40)]))
  with pytest.raises(ValueError, match=r"1.png is 10x40, smaller than the HR crop data.resolution=12"):
    sr_data.make_folder(config)


def test_div2k_crops_are_aligned(monkeypatch):
  rng = np.random.default_rng(9)
  hr = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
  elements = [{"hr": hr, "lr": hr[::4, ::4]}]
  monkeypatch.setattr(tfds_source, "open_tfds", lambda name, split, data_dir: elements)
  config = ml_collections.ConfigDict({"source": "sr_div2k", "resolution": 16, "size": 10})
  source = sr_data.make_div2k(config)
  for index in range(3):
    element = source[index]
    assert element["image"].shape == (16, 16, 3) and element["lr"].shape == (4, 4, 3)
    np.testing.assert_allclose(element["lr"] * 2 - 1, element["image"][::4, ::4], atol=1e-6)


def test_sample_mode_upscales_a_folder_and_draws_the_held_out_pictures(tmp_path):
  config = tiny_config("srresnet_photos", steps=1, checkpoint_every=1, sample_every=0, log_every=1)
  with config.unlocked():
    config.data.eval_size = 16
    config.eval.metrics = ()
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(config, workdir)
  directory = _write_images(tmp_path / "inputs", [(5, 7), (8, 4)])
  paths = sampling.upscale_folder(config, workdir, str(directory))
  assert [np.asarray(Image.open(p)).shape for p in paths] == [(20, 28, 3), (32, 16, 3)]
  sampling.write_samples(config, workdir, 2)  # the held-out images: grid.png = bicubic | SR | HR
  assert np.asarray(Image.open(tmp_path / "run" / "grid.png")).ndim == 3


def test_srgans_learning_rates_pretraining_then_the_papers_then_a_tenth_for_the_second_half():
  config = experiments.get_config("srgan_photos")  # 6,000 pretraining steps at 1e-3, then 3,000 GAN steps
  g_rate = steps.learning_rate_of(config.optim.g)
  d_rate = steps.learning_rate_of(config.optim.d)
  np.testing.assert_allclose([g_rate(5999), g_rate(6000), g_rate(7499), g_rate(7500), d_rate(1499), d_rate(1500)],
                             [1e-3, 1e-4, 1e-4, 1e-5, 1e-4, 1e-5], rtol=1e-6)
  paper = experiments.get_config("srgan_div2k")  # 10^6 pretraining steps at the paper's 1e-4
  pretraining = paper.model.pretrain_steps
  g_rate = steps.learning_rate_of(paper.optim.g)
  np.testing.assert_allclose([g_rate(0), g_rate(pretraining), g_rate(paper.train.steps - 1)], [1e-4, 1e-4, 1e-5],
                             rtol=1e-6)


def test_srgans_pretraining_step_is_srresnets():
  """The table's SRResNet row is the SRGAN run at the end of its pretraining: the same G, step for step."""
  config = tiny_config("srgan_photos")
  with config.unlocked():
    config.model.pretrain_steps = 5  # the tiny configs start with the GAN steps
  srgan_state, metrics = one_step(config, num_devices=1)
  assert "g_pretrain/loss" in metrics and "d_main/loss" not in metrics
  srresnet_state, _ = one_step(tiny_config("srresnet_photos"), num_devices=1)
  for name, state in (("params", lambda s: s.params["g"]), ("batch statistics", lambda s: s.model_state["g"])):
    for a, b in zip(jax.tree.leaves(state(srgan_state)), jax.tree.leaves(state(srresnet_state)), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
