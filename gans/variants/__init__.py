"""The variant registry: name -> make(config) -> GanVariant."""
from gans.variants import cgan, dcgan, gan, infogan, specgan, stylegan, stylegan2, wavegan

VARIANTS = {
    "gan": gan.make,
    "dcgan": dcgan.make,
    "stylegan": stylegan.make,
    "stylegan2": stylegan2.make,
    "cgan": cgan.make,
    "infogan": infogan.make,
    "wavegan": wavegan.make,
    "specgan": specgan.make,
}


def get_variant(name: str):
  """Returns the variant's make(config); unknown names fail with the list of valid ones."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown variant {name!r}; valid variants: {', '.join(sorted(VARIANTS))}.")
  return VARIANTS[name]
