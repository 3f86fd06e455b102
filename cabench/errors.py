"""The one exception type for user mistakes (bad input, bad parameters, unreadable files)."""


class CabenchError(ValueError):
    """A problem with the user's input; the CLI prints its message on one line and exits 2."""
