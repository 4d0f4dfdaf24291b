"""Held-out retrieval by gan_int_cls_shapes' trained text and image encoders (the joint embedding space).

  python benchmarks/text_encoder_retrieval.py WORKDIR [N] [model.pretrain_steps=400 ...]

Reads WORKDIR's latest checkpoint (a gan_int_cls_shapes run past model.pretrain_steps: the encoders are frozen
after it), embeds caption 3 of N held-out pictures (data.synth_seed + 1, never trained on) and their pictures, and
prints recall@1 among the N pairs both ways, exact (the pair itself) and by content (the retrieved item has the
same attribute label: the same count, kinds, colours, sizes and cells), beside chance 1/N. FIELD=VALUE arguments
repeat the run's config overrides, which its checkpoint is checked against.
"""
import sys

import jax.numpy as jnp
import numpy as np

import experiments
from gans import run
from gans.data import captions


def main(workdir: str, n: int, overrides: list[str]) -> None:
  config = experiments.get_config("gan_int_cls_shapes")
  for override in overrides:
    field, value = override.split("=", 1)
    section, name = field.split(".")
    config[section][name] = type(config[section][name])(value)
  setup = run.Setup(config, num_devices=1)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  data = config.data
  source = captions.CaptionedShapesSource(resolution=data.resolution, channels=3, size=n, captions_per_picture=10,
                                          caption_length=data.caption_length, max_shapes=data.max_shapes,
                                          seed=data.synth_seed + 1)
  items = [source[picture * 10 + 3] for picture in range(n)]
  images, ids = jnp.stack([i["image"] for i in items]), jnp.stack([i["caption"] for i in items])
  labels = np.stack([i["label"] for i in items])
  text = setup.variant.modules["text"].apply({"params": state.params["text"]}, ids)
  image = setup.variant.modules["image_encoder"].apply({"params": state.params["image_encoder"]}, images)
  scores = np.asarray(image @ text.T)
  same = (labels[:, None, :] == labels[None, :, :]).all(-1)
  image_to_text, text_to_image, pairs = scores.argmax(1), scores.argmax(0), np.arange(n)
  print(f"step {step}, {n} held-out pairs: recall@1 image->text {np.mean(image_to_text == pairs):.3f}, "
        f"text->image {np.mean(text_to_image == pairs):.3f}; same content: image->text "
        f"{np.mean(same[pairs, image_to_text]):.3f}, text->image {np.mean(same[text_to_image, pairs]):.3f}; "
        f"chance {1 / n:.4f}")


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500, sys.argv[3:])
