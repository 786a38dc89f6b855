"""What ``read_data`` returns: emissions and inputs, with times, sequence ids and column names."""

from __future__ import annotations

from typing import Any


class Data(tuple):
    """What ``read_data`` returns: unpacks as ``(emissions, inputs)`` and also has

    - ``times``: None, or observation times shaped like emissions without the
      last axis ((num_timesteps,), (num_sequences, num_timesteps) or a list);
    - ``sequence_ids``: None, or the CSV sequence column's values, one per sequence;
    - ``emission_columns`` / ``input_columns``: CSV column names (None otherwise).
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
        return self[0]

    @property
    def inputs(self):
        return self[1]
