"""Fuzz battery: hostile values through the Python API, the model-file reader, the
data loaders and the command line. The only acceptable failures are the documented
ones: ValueError or TypeError from the API and the readers (DataError and
ModelFileError are ValueErrors), and from ``lgssm ...`` an exit code with exactly one
line on stderr and no traceback. Anything else (AttributeError, IndexError,
MemoryError, RecursionError, a crash) fails the test.

Examples are bounded and derandomized (the same cases on every run and machine)."""

import contextlib
import copy
import io as stdio
import json
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lgssm import LinearGaussianSSM, cli  # noqa: E402
from lgssm import io as lio  # noqa: E402

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
DOCUMENTED = (ValueError, TypeError)

N, P = 2, 3
MODEL = LinearGaussianSSM(N, P)
PARAMS, PROPS = MODEL.initialize(0)

# -- hostile values ------------------------------------------------------------
specials = st.sampled_from([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, 1e154, 2.5])
numbers = st.one_of(
    specials, st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(min_value=-(2**70), max_value=2**70)
)
try:  # pandas' NA, when pandas is there (imported up front so that every run takes the same paths)
    import pandas

    missing = st.sampled_from([None, pandas.NA])
except ImportError:  # pragma: no cover
    missing = st.none()
scalars = st.one_of(
    numbers, missing, st.booleans(), st.text(max_size=5), st.complex_numbers(max_magnitude=10), st.just(object())
)


@st.composite
def arrays(draw, max_dims=4):
    """A NumPy array of a random shape (some dimensions 0, some the model's) and dtype."""
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5]), max_size=max_dims)))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool", "complex128", "object", "U3"]))
    size = int(np.prod(shape))
    fill = draw(st.lists(numbers, min_size=size, max_size=size))
    a = np.array(fill if size else [], dtype=object).reshape(shape)
    with np.errstate(all="ignore"):
        try:
            return a.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            return a


ragged = st.lists(st.lists(numbers, max_size=3), min_size=2, max_size=3).filter(
    lambda rows: len({len(r) for r in rows}) > 1
)
hostile = st.one_of(
    scalars, arrays(), ragged, st.lists(scalars, max_size=4), st.lists(arrays(max_dims=2), min_size=1, max_size=3)
)


def documented(call, *args, **kwargs):
    """Runs ``call``; returns its result, or None when it raised a documented error."""
    try:
        with np.errstate(all="ignore"):
            return call(*args, **kwargs)
    except DOCUMENTED:
        return None


KEYWORDS = [
    "initial_mean",
    "initial_covariance",
    "dynamics_weights",
    "dynamics_bias",
    "dynamics_input_weights",
    "dynamics_covariance",
    "emission_weights",
    "emission_bias",
    "emission_input_weights",
    "emission_covariance",
]


@FUZZ
@given(keyword=st.sampled_from(KEYWORDS), value=hostile)
def test_initialize(keyword, value):
    out = documented(MODEL.initialize, 0, **{keyword: value})
    if out is not None:
        documented(MODEL.marginal_log_prob, out[0], np.zeros((4, P)))


counts = st.one_of(
    st.integers(min_value=-3, max_value=8),
    st.sampled_from([10**12, 10**30, 2.5, 1e5, "10", None, True, np.int64(3), np.float64(3.0)]),
)


@FUZZ
@given(num_timesteps=counts, key=st.one_of(st.integers(-2, 2**64), scalars))
def test_sample(num_timesteps, key):
    documented(MODEL.sample, PARAMS, key, num_timesteps)


@FUZZ
@given(emissions=hostile, inputs=st.one_of(st.none(), hostile))
def test_filter_and_smoother(emissions, inputs):
    documented(MODEL.filter, PARAMS, emissions, inputs)
    documented(MODEL.smoother, PARAMS, emissions, inputs)


@FUZZ
@given(state_dim=counts, emission_dim=counts, flag=st.one_of(st.booleans(), scalars))
def test_model_construction(state_dim, emission_dim, flag):
    model = documented(LinearGaussianSSM, state_dim, emission_dim, has_dynamics_bias=flag)
    if model is not None:
        documented(model.initialize, 0)


@FUZZ
@given(
    option=st.sampled_from(["num_iters", "tolerance", "verbose", "return_summary"]), value=st.one_of(counts, scalars)
)
def test_fit_em_options(option, value):
    kwargs = {"num_iters": 1, "verbose": False, option: value}
    documented(MODEL.fit_em, PARAMS, PROPS, np.ones((3, P)), **kwargs)


GROUPS = {
    "initial": ["mean", "cov"],
    "dynamics": ["weights", "bias", "input_weights", "cov"],
    "emissions": ["weights", "bias", "input_weights", "cov"],
}
FIELDS = [(g, f) for g, fs in GROUPS.items() for f in fs]


@FUZZ
@given(where=st.sampled_from(FIELDS), value=hostile)
def test_parameter_fields(where, value):
    params = copy.deepcopy(PARAMS)
    setattr(getattr(params, where[0]), where[1], value)
    documented(MODEL.filter, params, np.ones((3, P)))


@FUZZ
@given(
    where=st.sampled_from(FIELDS + [(g, None) for g in GROUPS] + [(None, None)]),
    value=st.one_of(scalars, st.just(PARAMS)),
    props=st.booleans(),
)
def test_params_and_props_objects(where, value, props):
    """None or another object in place of params, props, a group or a ParameterProperties;
    a non-bool ``trainable``."""
    params, properties = copy.deepcopy(PARAMS), copy.deepcopy(PROPS)
    target = properties if props else params
    group, field = where
    if group is None:
        target = value
    elif field is None:
        setattr(target, group, value)
    elif props:
        getattr(target, group).__dict__[field].trainable = value
    else:
        setattr(getattr(target, group), field, value)
    args = (params, target) if props else (target, properties)
    documented(MODEL.fit_em, *args, np.ones((3, P)), num_iters=1, verbose=False)


# -- files ---------------------------------------------------------------------


def _valid_files(directory):
    """A valid file of each format, as bytes, by file name."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, P))
    y[2, 1] = np.nan
    model_path = os.path.join(directory, "model.json")
    lio.save_model(model_path, MODEL, PARAMS, PROPS)
    np.save(os.path.join(directory, "data.npy"), y)
    np.savez(os.path.join(directory, "data.npz"), emissions=y, times=np.arange(6.0))
    with open(os.path.join(directory, "data.csv"), "w") as fh:
        fh.write("a,b,c\n" + "".join(",".join("" if np.isnan(v) else repr(v) for v in row) + "\n" for row in y))
    out = {}
    for name in ("model.json", "data.npy", "data.npz", "data.csv"):
        with open(os.path.join(directory, name), "rb") as fh:
            out[name] = fh.read()
    return out


with tempfile.TemporaryDirectory() as _d:
    VALID = _valid_files(_d)


@st.composite
def mutated(draw, original: bytes):
    """``original`` with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def file_contents(name):
    return st.one_of(st.binary(max_size=200), mutated(VALID[name]))


@contextlib.contextmanager
def written(name, content):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as fh:
            fh.write(content)
        yield path


@FUZZ
@given(content=file_contents("model.json"))
def test_model_reader_bytes(content):
    with written("model.json", content) as path:
        documented(lio.load_model, path)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-(10**20), 10**20), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


@FUZZ
@given(
    path=st.lists(
        st.sampled_from(
            [
                "dims",
                "options",
                "params",
                "props",
                "initial",
                "dynamics",
                "emissions",
                "mean",
                "cov",
                "weights",
                "bias",
                "trainable",
                "structure",
                "state_dim",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    value=json_values,
)
def test_model_reader_documents(path, value):
    """A valid model document with one entry (found or added along ``path``) replaced by ``value``."""
    doc = json.loads(VALID["model.json"])
    node = doc
    for key in path[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    if isinstance(node, dict):
        node[path[-1]] = value
    documented(lio.model_from_json, doc, "model.json")


@FUZZ
@given(name=st.sampled_from(["data.csv", "data.npy", "data.npz"]), data=st.data())
def test_data_loaders(name, data):
    content = data.draw(file_contents(name))
    with written(name, content) as path:
        documented(lio.read_data, path)


# -- the command line ------------------------------------------------------------


def _one_line_failure(argv):
    err = stdio.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdio.StringIO()):
        code = cli.main(argv)
    text = err.getvalue()
    if code != 0:
        assert code in (1, 2), (argv, code, text)
        assert text.count("\n") == 1 and text.startswith("lgssm ") and "Traceback" not in text, text
    return code


@settings(FUZZ, max_examples=40)
@given(name=st.sampled_from(["data.csv", "data.npy", "data.npz", "model.json"]), data=st.data())
def test_cli_on_damaged_files(name, data):
    content = data.draw(file_contents(name))
    with tempfile.TemporaryDirectory() as d:
        for valid, raw in VALID.items():
            with open(os.path.join(d, valid), "wb") as fh:
                fh.write(content if valid == name else raw)
        data_file = "data.npy" if name == "model.json" else name
        before = sorted(os.listdir(d))
        code = _one_line_failure(
            [
                "loglik",
                os.path.join(d, "model.json"),
                os.path.join(d, data_file),
                "-q",
                "--out",
                os.path.join(d, "ll.csv"),
            ]
        )
        if code != 0:
            assert sorted(os.listdir(d)) == before  # nothing written
