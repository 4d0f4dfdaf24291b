"""The one error a user who has not fetched a dataset yet should see."""


class DatasetNotFoundError(FileNotFoundError):
  """The dataset is not where the config says; the message says how to get it."""
