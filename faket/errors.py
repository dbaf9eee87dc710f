"""The one exception type that user-facing code raises for bad input."""


class FaketError(ValueError):
    """Bad input or an impossible request, explained in one line.

    The message says what is wrong and how to fix it. The command line prints
    it (without a traceback) and exits with status 2.
    """
