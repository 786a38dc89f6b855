"""Reading data, saving and loading models, writing results; every write is atomic.

Data (``read_data``): one row per time step, from

- CSV (``.csv``; ``.tsv`` for tab-separated): a header row is optional and
  detected (the first row is a header when one of its cells is neither empty nor
  a number). Columns are referred to by header name or by 0-based index. Empty
  and ``nan`` cells are missing emissions. An optional sequence column groups
  the rows into sequences, in order of first appearance; optional input columns
  give the inputs; an optional times column gives observation times
  (continuous-time models).
- NPY (``.npy``): emissions of shape (num_timesteps, emission_dim), or
  (num_sequences, num_timesteps, emission_dim) padded at the end with NaN rows.
- NPZ (``.npz``): key ``emissions`` as for NPY, optional ``inputs`` of shape
  (num_timesteps, input_dim) or (num_sequences, num_timesteps, input_dim), and
  optional ``times`` of shape (num_timesteps,) or (num_sequences, num_timesteps);
  other keys (e.g. the ``states`` of ``lgssm simulate``) are ignored.

Models (``save_model``/``load_model``): the JSON format of docs/json-format.md,
float64 values written with ``repr`` so that a save/load round trip is exact.

Every file is written to a temporary file in the target's directory, flushed,
fsynced and then renamed over the target (``os.replace``), so an interrupted
write leaves either the old file or the new one, never a partial file.

Text files (CSV and JSON) are UTF-8, with or without a byte-order mark; other
encodings, binary data and NUL bytes are errors. CSV numbers are decimal
(``1.5``, ``-2e3``; no digit separators such as ``1_000``); a comma at the end of
every row (header included) is ignored rather than read as an empty column. The
arrays of .npy/.npz files must be as large as their headers declare, and fit in memory.

Errors in files are ``DataError`` / ``ModelFileError`` (both ``ValueError``)
with a one-line message naming the file and what is wrong.
"""

from .atomic import atomic_write
from .data import Data
from .errors import DataError, ModelFileError
from .kinds import ModelKind, kind_of, register_kind
from .model_file import FORMAT, VERSION, load_model, model_from_json, model_to_json, read_metadata, save_model
from .read import read_data
from .results import write_arrays

__all__ = [
    "Data",
    "DataError",
    "FORMAT",
    "ModelFileError",
    "ModelKind",
    "VERSION",
    "atomic_write",
    "kind_of",
    "load_model",
    "model_from_json",
    "model_to_json",
    "read_data",
    "read_metadata",
    "register_kind",
    "save_model",
    "write_arrays",
]
