"""Images in a directory tree or in a .zip: FFHQ and anything else shipped as image files."""
import io
import os
import warnings
import zipfile

from PIL import Image

from gans.data import images
from gans.data.errors import DatasetNotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_INSTALL_HINT = (
    "FFHQ is distributed as PNG files: download the release images (images1024x1024, "
    "or thumbnails128x128) from the NVlabs ffhq-dataset page and set data.path to that "
    "folder or to a .zip of it. Any folder tree or .zip of PNG/JPEG/BMP/WebP files works.")
# Everything Pillow and zipfile raise for a file that is missing, truncated or not an image.
_UNREADABLE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zipfile.BadZipFile, Image.DecompressionBombError)


def _is_image_name(name: str) -> bool:
  base = os.path.basename(name)
  # Dot files include the AppleDouble "._x.png" companions that macOS puts in zips.
  return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES)


def files_under(root: str, suffixes: tuple[str, ...]) -> list[str]:
  """Relative paths of the files under root whose names end in one of `suffixes` (any case), without dot
  files and dot directories, sorted so every host sees one order. Images, WAV and voxel folders use it."""
  names = []
  for directory, subdirectories, files in os.walk(root):
    subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
    relative = os.path.relpath(directory, root)
    names.extend(os.path.normpath(os.path.join(relative, f)) for f in files
                 if not f.startswith(".") and f.lower().endswith(suffixes))
  return sorted(names)


def warn_once(reported: set, path: str, message: str) -> None:
  """Warns `message` the first time `path` is reported (an unreadable file is skipped, and said once)."""
  if path not in reported:
    reported.add(path)
    warnings.warn(message)


def folder_image_names(root: str) -> list[str]:
  """Relative paths of the images under root, sorted so every host sees one order."""
  return files_under(root, IMAGE_SUFFIXES)


def zip_image_names(zip_path: str) -> list[str]:
  with zipfile.ZipFile(zip_path) as archive:
    return sorted(n for n in archive.namelist() if _is_image_name(n) and not n.startswith("__MACOSX/"))


class FolderSource:
  """source[i] -> {"image": f32[R, R, C] in [-1, 1]}, or None when file i cannot be decoded.

  A corrupt file is skipped rather than fatal: one bad PNG among 70k should not
  end a week-long run. Each unreadable path is warned about once per process.
  """

  def __init__(self, path: str, *, resolution: int, channels: int, center_crop: int = 0):
    self._path = path
    self._is_zip = os.path.isfile(path)
    self._names = zip_image_names(path) if self._is_zip else folder_image_names(path)
    if not self._names:
      raise DatasetNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {path!r}. {FOLDER_INSTALL_HINT}")
    self._image_options = dict(resolution=resolution, channels=channels, center_crop=center_crop)
    self._archive = None  # opened lazily: a ZipFile cannot be pickled into grain workers
    self._reported = set()

  def __len__(self) -> int:
    return len(self._names)

  def __getstate__(self):
    return {**self.__dict__, "_archive": None}

  def file_path(self, index: int) -> str:
    """Where image `index` lives; for a zip, the archive path joined with the member name."""
    return os.path.join(self._path, self._names[index])

  def _read_bytes(self, index: int) -> bytes:
    if not self._is_zip:
      with open(self.file_path(index), "rb") as file:
        return file.read()
    if self._archive is None:
      self._archive = zipfile.ZipFile(self._path)
    return self._archive.read(self._names[index])

  def _decode(self, index: int) -> Image.Image | None:
    try:
      image = Image.open(io.BytesIO(self._read_bytes(index)))
      image.load()  # Image.open is lazy: decode now so a truncated file fails here
      return image
    except _UNREADABLE_ERRORS as error:
      warn_once(self._reported, self.file_path(index), f"Skipping unreadable image {self.file_path(index)}: {error}")
      return None

  def __getitem__(self, index: int) -> dict | None:
    image = self._decode(index)
    if image is None:
      return None
    return {"image": images.model_image(image, **self._image_options)}

  def __repr__(self) -> str:
    return f"FolderSource({self._path!r}, {len(self)} images)"


def folder_source(path: str, **image_options) -> FolderSource:
  if not path or not (os.path.isdir(path) or zipfile.is_zipfile(path)):
    raise DatasetNotFoundError(f"No image folder or zip at {path!r}. {FOLDER_INSTALL_HINT}")
  return FolderSource(path, **image_options)
