"""lgssm.io: exact JSON round trips, data readers with named errors, atomic writes."""

import io as stdio
import json
import os
import re
import zipfile

import numpy as np
import pytest

import lgssm
from lgssm import LinearGaussianSSM
from lgssm import io as lio
from lgssm.io import results
from lgssm.params import field_names, param_groups

from conftest import spd, stable


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype == np.float64 and a.shape == b.shape and a.tobytes() == b.tobytes()


def fields(params):
    return {f"{g}.{f}": getattr(v, f) for g, v in param_groups(params) for f in field_names(v)}


def awkward_model(input_dim=1, time_varying=False, has_bias=True):
    """Parameters with values that a lossy float format would get wrong."""
    n, p = 3, 2
    rng = np.random.default_rng(7)
    model = LinearGaussianSSM(n, p, input_dim, has_dynamics_bias=has_bias, has_emissions_bias=has_bias)
    params, props = model.initialize(
        3,
        initial_mean=rng.normal(size=n) / 3,
        initial_covariance=spd(rng, n),
        dynamics_weights=stable(rng, n),
        dynamics_covariance=spd(rng, n, 0.1),
        emission_covariance=np.diag([0.1, 1 / 7]),
    )
    params.dynamics.bias = np.array([-0.0, 5e-324, 1e300]) if has_bias else np.zeros(n)
    params.dynamics.input_weights = rng.normal(size=(n, input_dim)) * 1e-17
    if time_varying:
        params.emissions.bias = rng.normal(size=(6, p)) / 3
        params.emissions.weights = rng.normal(size=(6, p, n))
    props.dynamics.weights.trainable = False
    props.initial.mean.trainable = False
    props.emissions.cov.structure = "diagonal"
    props.dynamics.cov.structure = "scalar"
    return model, params, props


@pytest.mark.parametrize("input_dim,time_varying,has_bias", [(1, False, True), (0, False, True), (2, True, False)])
def test_json_round_trip_is_bitwise_exact(tmp_path, input_dim, time_varying, has_bias):
    model, params, props = awkward_model(input_dim, time_varying, has_bias)
    path = tmp_path / "model.json"
    lio.save_model(path, model, params, props, metadata={"note": "x", "curve": np.array([1 / 3, -2.5])})
    model2, params2, props2 = lio.load_model(path)
    assert type(model2) is LinearGaussianSSM
    for name in ("state_dim", "emission_dim", "input_dim", "has_dynamics_bias", "has_emissions_bias"):
        assert getattr(model2, name) == getattr(model, name), name
    before, after = fields(params), fields(params2)
    assert before.keys() == after.keys()
    for name in before:
        assert same_bits(after[name], np.asarray(before[name], dtype=np.float64)), name
    for name, prop in fields(props).items():
        loaded = fields(props2)[name]
        assert (loaded.trainable, loaded.structure) == (prop.trainable, prop.structure), name
    # Saving what was loaded gives the same file.
    again = tmp_path / "again.json"
    lio.save_model(again, model2, params2, props2, metadata={"note": "x", "curve": np.array([1 / 3, -2.5])})
    assert again.read_bytes() == path.read_bytes()
    assert lio.read_metadata(path)["curve"] == [1 / 3, -2.5]


def test_json_header_and_default_props(tmp_path):
    model = LinearGaussianSSM(2, 3, has_emissions_bias=False)
    params, _ = model.initialize(0)
    path = tmp_path / "m.json"
    lio.save_model(path, model, params)
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"], doc["kind"]) == ("lgssm-model", 1, "discrete")
    assert doc["dims"] == {"state_dim": 2, "emission_dim": 3, "input_dim": 0}
    assert doc["params"]["dynamics"]["input_weights"] == [[], []]
    assert doc["props"]["emissions"]["bias"] == {"trainable": False, "structure": "full"}
    # props may be left out of a file, wholly or in part: the model's defaults apply.
    del doc["props"]
    doc["props"] = {"dynamics": {"weights": {"trainable": False}}}
    path.write_text(json.dumps(doc))
    _, _, props = lio.load_model(path)
    assert props.dynamics.weights.trainable is False
    assert props.dynamics.cov.trainable is True and props.emissions.bias.trainable is False


def _doc(tmp_path):
    model = LinearGaussianSSM(2, 2)
    params, props = model.initialize(0)
    path = tmp_path / "m.json"
    lio.save_model(path, model, params, props)
    return json.loads(path.read_text())


def _set(doc, dotted, value):
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc[key]
    if value is KeyError:
        del doc[last]
    else:
        doc[last] = value


BAD_DOCS = [
    ("format", "something-else", "\"format\" must be 'lgssm-model'"),
    ("version", 2, "format version 2 is not supported"),
    ("version", "1", "'version' must be an integer"),
    ("kind", "hidden-markov", "unknown \"kind\" 'hidden-markov'"),
    ("dims.state_dim", KeyError, "missing key 'dims.state_dim'"),
    ("dims.state_dim", 1.5, "'dims.state_dim' must be an integer"),
    ("params.dynamics.cov", KeyError, "missing key 'params.dynamics.cov'"),
    ("params.emisions", {}, "unknown key 'params.emisions'"),
    ("params.dynamics.weights", [[1.0, 0.0]], "params.dynamics.weights: expected shape (2, 2)"),
    ("params.dynamics.weights", [[1.0, 0.0], [1.0]], "params.dynamics.weights: not a rectangular array"),
    ("params.dynamics.bias", [0.0, "zero"], "params.dynamics.bias: expected a number, got the string 'zero'"),
    ("params.dynamics.bias", [0.0, True], "params.dynamics.bias: expected numbers"),
    ("params.emissions.cov", [[1.0, 2.0], [2.0, 1.0]], "emissions.cov"),  # not positive semidefinite
    ("props.emissions.cov.structure", "banded", "structure must be 'full', 'diagonal' or 'scalar'"),
    ("props.emissions.cov.trainable", "yes", "'props.emissions.cov.trainable' must be true or false"),
]


@pytest.mark.parametrize("key,value,message", BAD_DOCS, ids=[f"{k}={v}" for k, v, _ in BAD_DOCS])
def test_load_model_names_the_file_and_the_problem(tmp_path, key, value, message):
    doc = _doc(tmp_path)
    _set(doc, key, value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(lio.ModelFileError) as err:
        lio.load_model(path)
    assert str(err.value).startswith(str(path) + ": ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_load_model_invalid_json_and_top_level(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "lgssm-model",\n "version": 1,,}')
    with pytest.raises(lio.ModelFileError, match=r"broken\.json: not valid JSON: .* at line 2, column 15"):
        lio.load_model(path)
    path.write_text("[1, 2]")
    with pytest.raises(lio.ModelFileError, match="expected a JSON object at the top level"):
        lio.load_model(path)
    with pytest.raises(FileNotFoundError):
        lio.load_model(tmp_path / "nope.json")


def test_continuous_model_round_trip(tmp_path):
    model = lgssm.ContinuousTimeSSM(2, 3, 1, has_emissions_bias=False)
    params, props = model.initialize(5, drift=np.array([[-0.3, 1 / 3], [-1.0, -0.0]]))
    props.dynamics.drift.trainable = False
    props.dynamics.diffusion_cov.structure = "diagonal"
    lio.save_model(tmp_path / "ct.json", model, params, props)
    doc = json.loads((tmp_path / "ct.json").read_text())
    assert doc["kind"] == "continuous" and sorted(doc["params"]["dynamics"]) == ["diffusion_cov", "drift"]
    model2, params2, props2 = lio.load_model(tmp_path / "ct.json")
    assert type(model2) is lgssm.ContinuousTimeSSM and model2.has_emissions_bias is False
    for name, value in fields(params).items():
        assert same_bits(fields(params2)[name], np.asarray(value, dtype=np.float64)), name
    assert props2.dynamics.drift.trainable is False and props2.dynamics.diffusion_cov.structure == "diagonal"


# --------------------------------------------------------------------------
# Data.


def write(path, text):
    path.write_text(text)
    return path


def test_csv_with_header_sequences_inputs_and_missing_cells(tmp_path):
    path = write(
        tmp_path / "d.csv",
        "id,u,y1,y2\n"
        "b,0.5,1.0,2.0\n"
        "a,1.5,,3.0\n"  # empty cell: missing
        "b,2.5,nan,NaN\n"  # nan: missing
        " a , -1 , 4e-3 , 5 \n"
        "\n"  # blank lines are skipped
        "c,0,6,7\n",
    )
    data = lio.read_data(path, sequence_column="id", input_columns="u")
    ys, us = data
    assert data.sequence_ids == ["b", "a", "c"]  # order of first appearance
    assert data.emission_columns == ["y1", "y2"] and data.input_columns == ["u"]
    np.testing.assert_array_equal(ys[0], [[1.0, 2.0], [np.nan, np.nan]])
    np.testing.assert_array_equal(ys[1], [[np.nan, 3.0], [4e-3, 5.0]])
    np.testing.assert_array_equal(ys[2], [[6.0, 7.0]])
    np.testing.assert_array_equal(us[1], [[1.5], [-1.0]])
    assert all(y.dtype == np.float64 for y in ys) and data.times is None


def test_csv_without_header_and_column_choices(tmp_path):
    path = write(tmp_path / "d.csv", "1,2,3\n4,,6\n")
    y, u = lio.read_data(path)
    np.testing.assert_array_equal(y, [[1, 2, 3], [4, np.nan, 6]])
    assert u is None
    # A headerless file with text sequence ids, the sequence column given by index.
    path = write(tmp_path / "e.csv", "s1,1,2\ns2,3,4\ns1,5,6\n")
    data = lio.read_data(path, sequence_column=0)
    assert data.sequence_ids == ["s1", "s2"]
    np.testing.assert_array_equal(data.emissions[0], [[1, 2], [5, 6]])
    # Glob patterns select emission columns; times come back per sequence.
    path = write(tmp_path / "f.csv", "t,y_a,y_b,other\n0.5,1,2,9\n1.25,3,4,9\n")
    data = lio.read_data(path, emission_columns="y_*", times_column="t")
    np.testing.assert_array_equal(data.emissions, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(data.times, [0.5, 1.25])
    data = lio.read_data(write(tmp_path / "g.tsv", "y1\ty2\n1\t2\n"))
    np.testing.assert_array_equal(data.emissions, [[1, 2]])


CSV_ERRORS = [
    ("y1,y2\n1,2\n3,abc\n", {}, "line 3, column 2 ('y2'): 'abc' is not a number"),
    ("1,2\n3,x4\n", {"header": False}, "line 2, column 2: 'x4' is not a number"),
    ("y1,y2\n1,2\n3\n", {}, "line 3: 1 cells, expected 2"),
    ("y1,y2\n1,2\n", {"input_columns": "u"}, "input columns: no column 'u' (columns: y1, y2)"),
    ("y1,u\n1,\n", {"input_columns": "u"}, "line 2, column 2 ('u'): empty cell (an input cannot be missing)"),
    ("y1,y2\n1,inf\n", {}, "line 2, column 2 ('y2'): 'inf' is not allowed (values must be finite)"),
    ("y1,y1\n1,2\n", {}, "line 1: column name 'y1' appears twice in the header"),
    ("", {}, "no data (the file is empty)"),
    ("y1,y2\n", {}, "no data rows after the header"),
    ("id,y\na,1\n,2\n", {"sequence_column": "id"}, "line 3, column 1 ('id'): empty sequence id"),
    ("u\n1\n", {"input_columns": "u"}, "no emission columns"),
    ("t,y\n1,1\n1,2\n", {"times_column": "t"}, "line 3, column 1 ('t'): times must increase"),
]


@pytest.mark.parametrize("text,kwargs,message", CSV_ERRORS, ids=[m[:30] for _, _, m in CSV_ERRORS])
def test_csv_errors_name_line_and_column(tmp_path, text, kwargs, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(lio.DataError) as err:
        lio.read_data(path, **kwargs)
    assert str(err.value).startswith(f"{path}: {message}")


def test_npy_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 5, 3))
    y[1, 3:] = np.nan  # padding
    np.save(tmp_path / "y.npy", y)
    got, u = lio.read_data(tmp_path / "y.npy")
    assert same_bits(got, y) and u is None
    np.save(tmp_path / "y2.npy", y[0].astype(np.float32))
    got, _ = lio.read_data(tmp_path / "y2.npy")
    assert got.dtype == np.float64 and got.shape == (5, 3)
    inputs = rng.normal(size=(2, 5, 1))
    inputs[1, 3:] = np.nan  # inputs in the padding are not used
    np.savez(tmp_path / "d.npz", emissions=y, inputs=inputs, states=np.zeros(3))
    got, u = lio.read_data(tmp_path / "d.npz")
    assert same_bits(got, y) and same_bits(u, inputs)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda d: np.save(d / "x.npy", np.arange(5.0)),
            "x.npy: expected shape (num_timesteps, emission_dim) or "
            "(num_sequences, num_timesteps, emission_dim), got (5,)",
        ),
        (lambda d: np.save(d / "x.npy", np.zeros((2, 2, 2, 2))), "got (2, 2, 2, 2)"),
        (lambda d: np.save(d / "x.npy", np.array([["a", "b"]])), "expected numbers, got an array of dtype <U1"),
        (lambda d: np.savez(d / "x.npz", y=np.zeros((3, 2))), "x.npz: no array named 'emissions' (found y)"),
        (
            lambda d: np.savez(d / "x.npz", emissions=np.zeros((3, 2)), inputs=np.zeros((4, 1))),
            "x.npz: inputs: expected shape (3, input_dim) to match emissions, got (4, 1)",
        ),
        (
            lambda d: np.savez(d / "x.npz", emissions=np.zeros((3, 2)), inputs=np.full((3, 1), np.nan)),
            "inputs cannot be missing",
        ),
        (lambda d: (d / "x.xlsx").write_text(""), "unknown data format '.xlsx'"),
    ],
)
def test_array_file_errors(tmp_path, make, message):
    make(tmp_path)
    (path,) = [p for p in tmp_path.iterdir()]
    with pytest.raises(lio.DataError) as err:
        lio.read_data(path)
    assert message in str(err.value) and str(err.value).startswith(str(path))


def test_missing_data_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lio.read_data(tmp_path / "nope.csv")


# --------------------------------------------------------------------------
# Hostile files: one-line errors that name the file and the problem.


def _npy_bytes(a):
    buf = stdio.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz_bytes(**arrays):
    buf = stdio.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip_bytes(**members):
    buf = stdio.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name + ".npy", content)
    return buf.getvalue()


def _huge_header_npy():
    buf = stdio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)})
    return buf.getvalue() + b"\0" * 64


GOOD_NPY = _npy_bytes(np.arange(12.0).reshape(6, 2))
GOOD_NPZ = _npz_bytes(emissions=np.arange(12.0).reshape(6, 2))

HOSTILE_FILES = [  # name, bytes, message after "<path>: "
    ("empty.npy", b"", "not a readable .npy file (EOF"),
    ("empty.npz", b"", "not a readable .npz file"),
    ("empty.csv", b"", "no data (the file is empty)"),
    ("blank.csv", b" \n\n", "no data (the file is empty)"),
    ("commas.csv", b",,\n,,\n", "no data (every line is blank)"),
    (
        "trunc.npy",
        GOOD_NPY[:-10],
        "truncated: the header declares shape (6, 2) (96 bytes of data), but the file holds 86",
    ),
    ("header.npy", GOOD_NPY[:60], "not a readable .npy file (EOF: reading array header"),
    ("trunc.npz", GOOD_NPZ[: len(GOOD_NPZ) // 2], "not a readable .npz file"),
    (
        "huge.npy",
        _huge_header_npy(),
        "shape (1000000000000, 2) would need 14.6 TiB for the array declared in its "
        "header, more than this machine's memory",
    ),
    ("huge.npz", _zip_bytes(emissions=_huge_header_npy()), "emissions: shape (1000000000000, 2) would need 14.6 TiB"),
    ("crc.npz", GOOD_NPZ.replace(GOOD_NPY[-8:], b"\x01" * 8), "not a readable .npz file (Bad CRC-32"),
    ("noarray.npz", _zip_bytes(other=GOOD_NPY), "no array named 'emissions' (found other)"),
    ("binary.csv", bytes(range(256)), "binary data (a NUL byte at offset 0); expected UTF-8 text"),
    ("utf16.csv", "y1,y2\n1,2\n".encode("utf-16"), "UTF-16 text; expected UTF-8 (save the file as UTF-8)"),
    ("latin1.csv", "caf\xe9,y2\n1,2\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 on line 1; a Latin-1"),
    ("underscore.csv", b"y1,y2\n1_000,2\n", "line 2, column 1 ('y1'): '1_000' is not a number (digit separators"),
    ("digits.csv", "y1,y2\n1,\u0661\u0662\n".encode(), "line 2, column 2 ('y2'): '\u0661\u0662' is not a number"),
    ("nul.csv", b"y1,y2\n1,2\x00\n", "binary data (a NUL byte at offset 9)"),
]


@pytest.mark.parametrize("name,content,message", HOSTILE_FILES, ids=[h[0] for h in HOSTILE_FILES])
def test_hostile_data_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(lio.DataError) as err:
        lio.read_data(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    assert text[len(str(path)) + 2 :].startswith(message), text


def test_truncated_member_inside_a_valid_zip(tmp_path):
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("emissions.npy", GOOD_NPY[:-16])
    with pytest.raises(
        lio.DataError,
        match=re.escape(
            f"{path}: emissions: truncated: the header declares shape (6, 2) (96 bytes of data), but the file holds 80"
        ),
    ):
        lio.read_data(path)


def test_npy_fortran_order_and_other_dtypes(tmp_path):
    a = np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4))
    np.save(tmp_path / "f.npy", a)
    got, _ = lio.read_data(tmp_path / "f.npy")
    assert got.dtype == np.float64 and np.array_equal(got, a)
    assert got.flags.writeable


def test_csv_bom_is_accepted(tmp_path):
    plain = lio.read_data(write(tmp_path / "plain.csv", "y1,y2\n1,2\n3,4\n"))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.csv").read_bytes())
    bom = lio.read_data(tmp_path / "bom.csv")
    assert bom.emission_columns == ["y1", "y2"] and np.array_equal(bom.emissions, plain.emissions)


@pytest.mark.parametrize("text", ["y1,y2,\n1,2,\n3,4,\n", "1,2,\n3,4,\n", "y1,y2, \r\n1,2,\r\n3,4,\r\n"])
def test_trailing_comma_on_every_row_adds_no_column(tmp_path, text):
    data = lio.read_data(write(tmp_path / "t.csv", text))
    np.testing.assert_array_equal(data.emissions, [[1, 2], [3, 4]])


def test_named_empty_last_column_is_kept(tmp_path):
    """Only a comma at the end of every line, header included, is dropped: a named column stays."""
    data = lio.read_data(write(tmp_path / "t.csv", "y1,y2,y3\n1,2,\n3,4,\n"))
    assert data.emission_columns == ["y1", "y2", "y3"] and np.all(np.isnan(data.emissions[:, 2]))


@pytest.mark.parametrize("cell,value", [("1e3", 1e3), ("-.5", -0.5), ("+2.", 2.0), ("NaN", np.nan), ("nan", np.nan)])
def test_csv_numbers(tmp_path, cell, value):
    data = lio.read_data(write(tmp_path / "n.csv", f"y1,y2\n{cell},0\n"))
    np.testing.assert_array_equal(data.emissions, [[value, 0.0]])


@pytest.fixture
def model_file(tmp_path):
    model = LinearGaussianSSM(2, 3)
    path = tmp_path / "model.json"
    lio.save_model(path, model, model.initialize(0)[0])
    return path


def test_model_json_bom_is_accepted(tmp_path, model_file):
    model, params, _ = lio.load_model(model_file)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + model_file.read_bytes())
    model2, params2, _ = lio.load_model(tmp_path / "bom.json")
    assert all(same_bits(a, fields(params2)[k]) for k, a in fields(params).items())
    assert lio.read_metadata(tmp_path / "bom.json") == lio.read_metadata(model_file)


def _json_cases(valid: bytes):
    doc = json.loads(valid)
    huge = json.loads(valid)
    huge["dims"]["state_dim"] = 10**9
    deep_param = json.loads(valid)
    deep_param["params"]["dynamics"]["weights"] = [[[[0.99]]]]
    return [
        ("empty", b"", "no data (the file is empty)"),
        ("binary", bytes(range(256)), "binary data (a NUL byte at offset 0)"),
        ("utf16", valid.decode().encode("utf-16"), "UTF-16 text; expected UTF-8"),
        ("latin1", valid.replace(b'"discrete"', '"discr\xe8te"'.encode("latin-1")), "not UTF-8 text (byte 0xe8"),
        ("deep", b"[" * 100000 + b"]" * 100000, "not a valid model file: JSON nested too deeply"),
        ("digits", b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON: Exceeds the limit"),
        (
            "duplicate",
            valid.replace(b'"version": 1,', b'"version": 1, "version": 1,'),
            "not a valid model file: the key 'version' appears twice in one object",
        ),
        ("huge dims", json.dumps(huge).encode(), "dims/options: state_dim: 1000000000 would need"),
        (
            "deep parameter",
            json.dumps(deep_param).encode(),
            "params.dynamics.weights: expected an array of at most 3 dimensions",
        ),
        ("not an object", json.dumps([doc]).encode(), "expected a JSON object at the top level"),
    ]


def test_hostile_model_files(tmp_path, model_file):
    for name, content, message in _json_cases(model_file.read_bytes()):
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_bytes(content)
        with pytest.raises(lio.ModelFileError) as err:
            lio.load_model(path)
        text = str(err.value)
        assert text.startswith(f"{path}: ") and "\n" not in text, (name, text)
        assert message in text, (name, text)


# --------------------------------------------------------------------------
# Writing.


def test_write_arrays_formats(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 2)) / 3, rng.normal(size=(4, 2, 2))
    a[1, 0] = np.nan
    a[2, 1] = -0.0
    lio.write_arrays(tmp_path / "r.npz", a=a, b=b)
    with np.load(tmp_path / "r.npz") as z:
        assert same_bits(z["a"], a) and same_bits(z["b"], b)
    lio.write_arrays(tmp_path / "r.npy", a=a)
    assert same_bits(np.load(tmp_path / "r.npy"), a)
    lio.write_arrays(tmp_path / "r.csv", sequence=np.array(["x", "x", "y", "y"]), t=np.arange(4), a=a, b=b)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "sequence,t,a_0,a_1,b_0_0,b_0_1,b_1_0,b_1_1"
    assert lines[2].startswith("x,1,nan,")
    # CSV values are exact: read back with read_data.
    data = lio.read_data(tmp_path / "r.csv", sequence_column="sequence", emission_columns="a_*,b_*")
    assert same_bits(np.concatenate(data.emissions), np.concatenate([a, b.reshape(4, 4)], axis=1))
    with pytest.raises(ValueError, match="a .npy file holds one array"):
        lio.write_arrays(tmp_path / "x.npy", a=a, b=b)
    with pytest.raises(ValueError, match="needs the same first axis"):
        lio.write_arrays(tmp_path / "x.csv", a=a, c=np.zeros(3))
    with pytest.raises(ValueError, match="unknown output format '.txt'"):
        lio.write_arrays(tmp_path / "x.txt", a=a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.npy", "r.npz"]


class Boom(Exception):
    pass


def _partial_savez(fh, **arrays):
    fh.write(b"PK\x03\x04 partial zip")
    fh.flush()
    raise Boom("disk on fire")


def _assert_only(directory, names):
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_npz_write_leaves_no_partial_file(tmp_path, monkeypatch, existing):
    target = tmp_path / "out.npz"
    if existing:
        lio.write_arrays(target, a=np.arange(3.0))
        old = target.read_bytes()
    monkeypatch.setattr(np, "savez", _partial_savez)
    with pytest.raises(Boom):
        lio.write_arrays(target, a=np.ones(5))
    _assert_only(tmp_path, ["out.npz"] if existing else [])
    if existing:
        assert target.read_bytes() == old


def test_interrupted_csv_write_leaves_no_partial_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = results._cell

    def flaky(x):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt  # as from Ctrl-C half way through
        return real(x)

    monkeypatch.setattr(results, "_cell", flaky)
    with pytest.raises(KeyboardInterrupt):
        lio.write_arrays(tmp_path / "out.csv", a=np.ones((10, 3)))
    assert calls["n"] > 7
    _assert_only(tmp_path, [])


def test_failed_fsync_of_model_leaves_no_file(tmp_path, monkeypatch):
    model = LinearGaussianSSM(2, 2)
    params, props = model.initialize(0)

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        lio.save_model(tmp_path / "m.json", model, params, props)
    _assert_only(tmp_path, [])


def test_atomic_write_keeps_umask_permissions(tmp_path):
    with lio.atomic_write(tmp_path / "f.txt") as fh:
        fh.write("hello")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.txt").read_text() == "hello"
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
