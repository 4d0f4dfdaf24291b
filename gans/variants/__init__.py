"""The variant registry: name -> make(config) -> GanVariant."""
from gans.variants import cgan, dcgan, gan, gan3d, infogan, specgan, srgan, stylegan, stylegan2, wavegan
from gans.variants.image2image import cyclegan, pix2pix
from gans.variants.text2image import gan_int_cls, stackgan

VARIANTS = {
    "gan": gan.make,
    "dcgan": dcgan.make,
    "stylegan": stylegan.make,
    "stylegan2": stylegan2.make,
    "cgan": cgan.make,
    "infogan": infogan.make,
    "gan3d": gan3d.make,
    "pix2pix": pix2pix.make,
    "cyclegan": cyclegan.make,
    "wavegan": wavegan.make,
    "specgan": specgan.make,
    "srgan": srgan.make,  # SRResNet too: model.objective
    "gan_int_cls": gan_int_cls.make,  # GAN, GAN-CLS, GAN-INT too: model.objective
    "stackgan": stackgan.make,  # Stage-I then Stage-II in one run
}


def get_variant(name: str):
  """Returns the variant's make(config); unknown names fail with the list of valid ones."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown variant {name!r}; valid variants: {', '.join(sorted(VARIANTS))}.")
  return VARIANTS[name]
