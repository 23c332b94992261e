"""Readers: every format on the measured samples in ../shared/data/measured, synthetic binaries for the
layouts without a sample (Bruker RAW v1/v2/v4, NeXus), the number scanner (hypothesis), and error reasons."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from xrdbatch import readers
from xrdbatch.readers import ReaderError, read_bytes, read_patterns

M = "measured"

# (relative path, format, n_patterns, first x, last x, n_points, wavelength)
SAMPLES = [
    ("format_samples/samples/BT86.raw", "bruker_raw", 1, 3.0, 40.0, 2374, 1.5406),
    ("format_samples/samples/Cu3Au-1.raw", "bruker_raw", 1, 22.0, 100.0, 3901, 1.5406),
    ("format_samples/samples/format1.raw", "bruker_raw", 3, 10.0, 20.0, 101, 1.5406),
    ("gsas2_tutorials/StackingFaults-II/data/Keokuk kaolinite.RAW", "bruker_raw", 2, 10.0, 90.0, 4001, 1.5406),
    ("gsas2_tutorials/MDtutorials/CWInstDemo/data/LaB6_Jan2018.raw", "bruker_raw", 1, 10.0, 70.004, 3040, 1.5406),
    ("format_samples/samples/BT86_.UXD", "bruker_uxd", 1, 3.0, 40.0, 2374, 1.5406),
    ("format_samples/samples/empyrean.xrdml", "xrdml", 1, 30.05, 41.75, 196, 1.540598),
    ("rb_m2o5f/powder_X-ray_diffraction/RbNb2O5F/raw_data/RbNb2O5F.xrdml", "xrdml", 1, 5.007, 119.988, 8758,
     1.540598),
    ("alab_xrdml/dataset/binary_reactions/CuO-MnO_800C_60min.xrdml", "xrdml", 1, 9.903, 100.095, None, 1.540598),
    ("gsas2_tutorials/CWCombined/data/PBSO4.XRA", "gsas", 1, 10.0, 160.0, 6001, None),
    ("gsas2_tutorials/CWCombined/data/PBSO4.CWN", "gsas", 1, 10.0, 155.9, 2919, None),
    ("gsas2_tutorials/LabData/data/FAP.XRA", "gsas", 1, 15.0, 130.04, 5753, None),
    ("gsas2_tutorials/MDtutorials/CWInstDemo/data/NIST660CBI.gsas", "gsas", 1, 15.0066, 124.9989, 8378, None),
    ("gsas2_tutorials/CWNeutron/data/garnet.raw", "gsas", 1, 24.0, 157.9, 2679, None),
    ("gsas2_tutorials/FitPeaks/data/11bmb_8716.fxye", "gsas", 1, 0.5, 49.986, 49494, 0.413259),
    ("gsas2_tutorials/MCsimanneal/data/x3lactos.xye", "xy", 1, 3.0, 26.875, 4776, None),
    ("format_samples/samples/1517474.cif", "pdcif", 1, 1.5, 166.25, 3296, 2.0785),
    ("iucr_rietveld/data/experimental_xrd/cif_files/br1322Isup2.rtv.combined.cif", "pdcif", 1, 15.016, 89.975,
     9652, 1.54056),
    ("iucr_rietveld/data/experimental_xrd/cif_files/wm2446Isup2.rtv.combined.cif", "pdcif", 1, 9.945, 109.888,
     5880, 1.54178),
    ("iucr_rietveld/data/experimental_xrd/cif_files/gw5052Mg2Si_100K_LTsup2.rtv.combined.cif", "pdcif", 1, 7.0,
     75.0, 6801, 0.49935),
    ("tacr2o6/data-release/xrd_measurements/xrd_measurement_TaCr2O6.dat", "step_scan", 1, 5.0, 90.0, 4251, None),
    ("format_samples/samples/PSI_DMC.dat", "step_scan", 1, 2.948, 162.898, 3200, 1.494),
    ("format_samples/samples/D1A5.dat", "step_scan", 1, -10.0, 157.9, 1680, None),
    ("format_samples/samples/xy_text.txt", "xy", 1, 20.0, 100.0, 4001, None),
    ("rruff_minerals_dev/rruff_133.xy", "xy", 1, 5.0, 89.99, 8500, None),
    ("autoxrd_spectra/Example/Spectra/MnO.xy", "xy", 1, 10.0, 100.0, 9001, None),
    ("pvlab_thin_films/Datasets/Experimental/pm-3m/1_2-Theta.xy", "xy", 1, 5.0, None, None, None),
    ("rb_m2o5f/powder_X-ray_diffraction/RbNb2O5F/Rietveld_refinement/RbNb2O5F.dat", "xy", 1, 5.0197, 119.988,
     8757, None),
]

# files in the samples that are not powder patterns, or not enough of one: a ReaderError with a reason
NOT_PATTERNS = [
    ("format_samples/samples/03yag02.mca", "binary content"),
    ("format_samples/samples/SMP00011.CNF", "binary content"),
    ("format_samples/samples/1d-1.spe", "binary content"),
    ("format_samples/samples/XSYGExample.xsyg", "no block of numeric columns"),
    ("format_samples/samples/small.tsv", "only 5 data points"),
    ("format_samples/samples/test2.csv", "no block of numeric columns"),
    ("rb_m2o5f/powder_X-ray_diffraction/RbNb2O5F/raw_data/RbNb2O5F.xy", "background points"),
    ("gsas2_tutorials/Simulation/data/CuO.cif", "structure CIF without powder data"),
]


@pytest.mark.parametrize("rel, fmt, n, x0, x1, npts, wl", SAMPLES, ids=[s[0].rsplit("/", 1)[-1] for s in SAMPLES])
def test_reads_measured_samples(rel, fmt, n, x0, x1, npts, wl):
    patterns = read_patterns(shared_path(M, *rel.split("/")))
    assert len(patterns) == n
    p = patterns[0]
    assert p.meta["format"] == fmt and p.axis == "two_theta_deg"
    assert p.x.dtype == np.float64 and p.x.shape == p.intensity.shape
    assert np.all(np.diff(p.x) > 0) and np.isfinite(p.intensity).all()
    assert p.x[0] == pytest.approx(x0, abs=2e-3)
    if x1 is not None:
        assert p.x[-1] == pytest.approx(x1, abs=2e-3)
    if npts is not None:
        assert p.x.size == npts
    assert p.meta.get("wavelength_angstrom") == (pytest.approx(wl) if wl else None)
    assert p.intensity.max() > 0


def test_bruker_raw_matches_its_uxd_export():
    raw = read_patterns(shared_path(M, "format_samples", "samples", "BT86.raw"))[0]
    uxd = read_patterns(shared_path(M, "format_samples", "samples", "BT86_.UXD"))[0]
    np.testing.assert_allclose(raw.x, uxd.x, atol=6e-3)  # UXD prints 2-theta with 2-3 decimals
    np.testing.assert_array_equal(raw.intensity, uxd.intensity)
    assert raw.meta["wavelength2_angstrom"] == pytest.approx(uxd.meta["wavelength2_angstrom"], abs=1e-4)


def test_xrdml_metadata_and_counts():
    p = read_patterns(shared_path(M, "rb_m2o5f", "powder_X-ray_diffraction", "RbNb2O5F", "raw_data",
                                  "RbNb2O5F.xrdml"))[0]
    assert p.meta["wavelength2_angstrom"] == pytest.approx(1.544426)
    assert p.meta["ka2_ratio"] == pytest.approx(0.5)
    assert p.meta["sample"] == "RbNb2O5F"
    assert p.meta["intensity_unit"] == "counts"


@pytest.mark.parametrize("rel, reason", NOT_PATTERNS, ids=[r[0].rsplit("/", 1)[-1] for r in NOT_PATTERNS])
def test_non_patterns_are_refused_with_a_reason(rel, reason):
    path = shared_path(M, *rel.split("/"))
    with pytest.raises(ReaderError, match=reason) as err:
        read_patterns(path)
    assert str(path) in str(err.value)


def test_every_measured_file_reads_or_says_why():
    """No reader ever raises anything but ReaderError on the whole measured folder (minus the 500 RRUFF)."""
    root = shared_path(M)
    n_ok = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "rruff_minerals_dev" not in p.parts):
        try:
            n_ok += len(read_patterns(path)) > 0
        except ReaderError as exc:
            assert exc.reason and str(path) in str(exc)
    assert n_ok > 150


# ---------------------------------------------------------------- synthetic binary layouts ----
def _raw_v1(x0, step, y, ka1=1.5406):
    head = b"RAW " + struct.pack("<I", len(y)) + struct.pack("<ffIIf", 1.0, step, 0, 0, x0)
    head += struct.pack("<fff", -1e6, -1e6, -1e6) + b"sample-v1".ljust(32, b"\0") + struct.pack("<ff", ka1, 1.5444)
    head += b"\0" * 72 + struct.pack("<I", 0)
    return head + np.asarray(y, "<f4").tobytes()


def _raw_v2(x0, step, y):
    head = bytearray(256)
    head[0:4] = b"RAW2"
    head[4:6] = struct.pack("<H", 1)
    head[188:190] = b"Cu"
    head[190:202] = struct.pack("<fff", 1.5406, 1.5444, 0.5)
    rng = bytearray(48 + 8)
    rng[0:4] = struct.pack("<HH", len(rng), len(y))
    rng[12:20] = struct.pack("<ff", step, x0)
    return bytes(head) + bytes(rng) + np.asarray(y, "<f4").tobytes()


def _raw_v4(x0, step, y):
    out = bytearray(b"RAW4.00" + b"\0" * 54)
    seg = bytearray(120)
    seg[0:8] = struct.pack("<II", 30, 120)
    seg[72:112] = struct.pack("<5d", 1.54184, 1.5406, 1.5444, 1.3922, 0.5)
    seg[116:120] = b"Cu\0\0"
    out += seg
    rng = bytearray(160)
    rng[0:4] = struct.pack("<I", 0)
    rng[32:56] = b"Locked Coupled".ljust(24, b"\0")
    rng[72:92] = struct.pack("<ddI", x0, step, len(y))
    rng[136:144] = struct.pack("<II", 4, 0)
    return bytes(out + rng) + np.asarray(y, "<f4").tobytes()


@pytest.mark.parametrize("writer, version", [(_raw_v1, 1), (_raw_v2, 2), (_raw_v4, 4)])
def test_bruker_raw_versions(writer, version):
    y = np.arange(200, dtype=np.float32) % 17
    [p] = read_bytes("x.raw", writer(10.0, 0.02, y))
    assert p.meta["version"] == version and p.meta["format"] == "bruker_raw"
    np.testing.assert_allclose(p.x, 10.0 + 0.02 * np.arange(200), atol=1e-5)
    np.testing.assert_array_equal(p.intensity, y)
    assert p.meta["wavelength_angstrom"] == pytest.approx(1.5406, abs=1e-4)
    with pytest.raises(ReaderError, match="truncated"):
        read_bytes("x.raw", writer(10.0, 0.02, y)[:-40])


def test_nexus_single_and_stack(tmp_path):
    h5py = pytest.importorskip("h5py")
    tth = np.linspace(5, 90, 500)
    stack = np.random.default_rng(0).random((3, 500))
    q = 4 * np.pi * np.sin(np.radians(tth) / 2) / 0.7
    with h5py.File(tmp_path / "scan.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        mono = entry.create_group("instrument/monochromator")
        mono.create_dataset("wavelength", data=0.07).attrs["units"] = "nm"
        entry.create_group("sample").create_dataset("name", data="LaB6")
        d = entry.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="counts", axes=[".", "two_theta"])
        d.create_dataset("counts", data=stack)
        d.create_dataset("two_theta", data=tth).attrs["units"] = "deg"
        d2 = entry.create_group("reduced")
        d2.attrs.update(NX_class="NXdata", signal="I", axes="Q")
        d2.create_dataset("I", data=stack[0])
        d2.create_dataset("Q", data=q).attrs["units"] = "1/angstrom"
    patterns = read_patterns(tmp_path / "scan.nxs")
    assert len(patterns) == 4 and {p.meta["format"] for p in patterns} == {"nexus"}
    stacked = [p for p in patterns if p.axis == "two_theta_deg"]
    assert len(stacked) == 3 and np.array_equal(stacked[2].intensity, stack[2])
    qp = next(p for p in patterns if p.axis == "q_per_angstrom")
    assert qp.meta["wavelength_angstrom"] == pytest.approx(0.7) and qp.meta["sample"] == "LaB6"
    np.testing.assert_allclose(qp.two_theta_deg(), tth, atol=1e-9)


# -------------------------------------------------------------------------- text layouts ----
def test_text_layouts():
    y = np.arange(150) % 7 + 1.0
    x = 10 + 0.05 * np.arange(150)
    body = "".join(f"{a:.2f},{b:.1f}\n" for a, b in zip(x, y))
    [p] = read_bytes("a.csv", ("two_theta,intensity\n" + body).encode())
    np.testing.assert_allclose(p.intensity, y)
    rruff = "##NAMES=Quartz\n##RRUFFID=R040031\n##X-RAY WAVELENGTH=1.541838\n" + body.replace(",", "\t") + \
        "##END=\n"
    [p] = read_bytes("r.txt", rruff.encode())
    assert p.meta["format"] == "rruff" and p.meta["sample"] == "Quartz"
    assert p.meta["wavelength_angstrom"] == pytest.approx(1.541838) and p.x.size == 150
    [p] = read_bytes("q.dat", ("# Q(1/A) I\n" + body.replace(",", " ")).encode())
    assert p.axis == "q_per_angstrom"
    utf16 = ("2theta intensity\n" + body.replace(",", " ")).encode("utf-16")
    [p] = read_bytes("u.xy", utf16)
    np.testing.assert_allclose(p.x, x)
    step = "5 0.5 79.5\n" + "\n".join(str(v) for v in y) + "\n"
    [p] = read_bytes("s.dat", step.encode())
    assert p.meta["format"] == "step_scan" and p.x[-1] == pytest.approx(79.5)
    with pytest.raises(ReaderError, match="promises 150 points"):
        read_bytes("s.dat", step.encode()[:-30])


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (bytes(range(256)) * 4, "binary content"),
    (b"<?xml version='1.0'?><xrdMeasurements><xrdMeasurement><scan>", "not well-formed XML"),
    (b"RAW1.01\0" + b"\x01" * 100, "truncated"),
    (b"hello\nworld\n", "no block of numeric columns"),
])
def test_errors_name_the_reason(data, reason):
    with pytest.raises(ReaderError, match=reason) as err:
        read_bytes("/data/f.xy", data)
    assert "/data/f.xy" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12),
                min_size=2, max_size=60),
       st.sampled_from([" ", "\t", ",", " , ", ";"]), st.sampled_from(["\n", "\r\n", "\r"]))
def test_scanner_matches_python_float(values, sep, eol):
    rows = [values[i:i + 2] for i in range(0, len(values) - 1, 2)]
    text = eol.join(sep.join(repr(v) for v in r) for r in rows) + eol
    parsed, counts, header, trailer = readers.parse_numbers(("# head" + eol + text + "END" + eol).encode())
    expected = np.array([v for r in rows for v in r])
    np.testing.assert_allclose(parsed, expected, rtol=1e-14, atol=0)
    assert counts.tolist() == [2] * len(rows) and header.startswith(b"# head") and trailer.startswith(b"END")


def test_gsas_esd_and_fxye_banks():
    y = np.arange(120, dtype=float) + 100
    lines = []
    for i in range(0, 120, 5):
        lines.append("".join(f"{v:8.1f}{np.sqrt(v):8.2f}" for v in y[i:i + 5]))
    esd = "title line Cu Ka\nBANK 1 120 24 CONST 1000.0 2.0 0 0 ESD\n" + "\n".join(lines) + "\n"
    [p] = read_bytes("a.gsas", esd.encode())
    assert p.meta["gsas_type"] == "ESD"
    np.testing.assert_allclose(p.x, 10.0 + 0.02 * np.arange(120))  # centidegrees
    np.testing.assert_allclose(p.intensity, y)
    fxye = "t\nBANK 2 120 120 CONS 500.0 1.0 0 0 FXYE\n" + "".join(
        f"{500 + i:.1f} {v:.1f} {np.sqrt(v):.2f}\n" for i, v in enumerate(y))
    [p] = read_bytes("b.fxye", fxye.encode())
    assert p.meta["bank"] == 2 and p.x[0] == pytest.approx(5.0) and p.x[-1] == pytest.approx(6.19)
    with pytest.raises(ReaderError, match="truncated"):
        read_bytes("a.gsas", esd.encode()[:-200])


def test_xrdml_list_positions_attenuation_and_two_scans():
    counts = " ".join(str(v) for v in range(1, 151))
    tt = " ".join(f"{10 + 0.1 * i:.2f}" for i in range(150))
    att = " ".join("2" if i < 10 else "1" for i in range(150))
    scan = ('<scan scanAxis="2Theta"><dataPoints><positions axis="2Theta" unit="deg"><listPositions>' + tt
            + '</listPositions></positions><beamAttenuationFactors>' + att
            + '</beamAttenuationFactors><counts unit="counts">' + counts + "</counts></dataPoints></scan>")
    doc = ('<?xml version="1.0"?><xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.0">'
           '<xrdMeasurement><usedWavelength><kAlpha1 unit="Angstrom">0.7093</kAlpha1></usedWavelength>'
           + scan + scan + "</xrdMeasurement></xrdMeasurements>")
    ps = read_bytes("m.xrdml", doc.encode())
    assert len(ps) == 2 and ps[1].meta["wavelength_angstrom"] == pytest.approx(0.7093)
    assert ps[0].x[-1] == pytest.approx(24.9) and ps[0].intensity[0] == 2 and ps[0].intensity[-1] == 150
