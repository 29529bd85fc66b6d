"""The one exception type that means "the user asked for something wrong"."""


class SemJaxError(ValueError):
  """A user-facing error: bad config, bad data, mismatched workdir or checkpoint.

  The CLI prints ``error: <message>`` on one line and exits with status 2; no
  traceback. Library users catch it like any ``ValueError``.
  """
