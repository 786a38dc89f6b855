"""The errors of lgssm.io: a file that cannot be read as data or as a model."""


class DataError(ValueError):
    """A data file that cannot be read as emissions; the message names file, line and column."""


class ModelFileError(ValueError):
    """A model file that is not valid lgssm JSON; the message names the file and what is wrong."""
