"""The one exception type users see: a message they can act on, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (file, option, data). The CLI prints `str(err)` and exits 1.

    The message must name the file or option and say what is wrong, in one line.
    """
