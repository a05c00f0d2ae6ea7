"""The one exception type users see: a one-line message naming the problem and the fix."""


class LlmrecError(Exception):
    """A user-facing error. ``str(err)`` is one line: what is wrong, and what to do."""
