"""What ``read_data`` returns: emissions and inputs, with times, sequence ids and column names."""

from __future__ import annotations

from typing import Any


class Data(tuple):
    """The data that `read_data` returns: a tuple ``(emissions, inputs)`` with more attributes.

    Parameters
    ----------
    emissions : array or list of array
        Shape (num_timesteps, emission_dim), (num_sequences, num_timesteps, emission_dim)
        NaN-padded, or a list of (num_timesteps_i, emission_dim) arrays.
    inputs : array or list of array, optional
        The same layout with input_dim columns, or None.
    times : array or list of array, optional
        Observation times shaped like the emissions without the last axis
        ((num_timesteps,), (num_sequences, num_timesteps) or a list).
    sequence_ids : list, optional
        The CSV sequence column's values, one per sequence.
    emission_columns : list of str, optional
        The CSV columns of the emissions.
    input_columns : list of str, optional
        The CSV columns of the inputs.
    """

    times: Any
    sequence_ids: list | None
    emission_columns: list[str] | None
    input_columns: list[str] | None

    def __new__(cls, emissions, inputs, times=None, sequence_ids=None, emission_columns=None, input_columns=None):
        self = super().__new__(cls, (emissions, inputs))
        self.times = times
        self.sequence_ids = sequence_ids
        self.emission_columns = emission_columns
        self.input_columns = input_columns
        return self

    @property
    def emissions(self):
        """The emissions, ``self[0]``."""
        return self[0]

    @property
    def inputs(self):
        """The inputs, ``self[1]`` (None without inputs)."""
        return self[1]
