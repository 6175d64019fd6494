"""The error raised for a malformed index file (CSV/TSV/JSON): it names the file and the line."""


class DataFormatError(ValueError):
    """A malformed data file, e.g. a CSV row with a missing column or a JSON syntax error.

    Args:
        path: str, the file.
        line: int or None, the 1-based line number.
        message: str, what is wrong.

    Example:
    >>> str(DataFormatError("train.csv", 3, "expected 2 fields, found 1"))
    'train.csv:3: expected 2 fields, found 1'
    """

    def __init__(self, path, line, message):
        self.path = str(path)
        self.line = line
        self.message = message
        location = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{location}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.line, self.message))
