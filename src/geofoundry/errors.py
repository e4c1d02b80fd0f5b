"""The one exception type users see: a message that names the file or key and says what to do."""


class GeofoundryError(Exception):
    """Bad input or state. The CLI prints the message (no traceback) and exits with status 1."""
