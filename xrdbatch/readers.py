"""Readers for measured powder patterns, in a registry keyed by format.

How the parts fit:

1. :data:`FORMATS` is a dict ``name -> Format(read, extensions, sniff, library, description)``.
   :func:`detect_format` sniffs the first bytes of a file first (magic numbers and keywords: ``RAW1.01``,
   ``<xrdMeasurements``, ``\\x89HDF``, ``BANK``, ``_pd_``, ``_2THETA``) and only then trusts the file
   extension, so a mislabelled file is read by what it is; plain numbers are the fallback.
2. Every reader takes ``(path, data: bytes)`` and returns a list of :class:`Pattern` (several for
   multi-range RAW files, GSAS banks, pdCIF blocks, xrdml scans and NeXus stacks). A reader raises
   :class:`ReaderError` naming the file and the reason; nothing else escapes :func:`read_patterns`.
3. :class:`Pattern` keeps the abscissa the file gives (2-theta in degrees, Q in 1/angstrom or d in angstrom)
   and the metadata found (wavelength(s), K-alpha2 ratio, instrument, sample); :meth:`Pattern.two_theta_deg`
   converts to 2-theta by Bragg's law for a wavelength (the file's own, or one given by the caller).

Libraries: gemmi.cif for pdCIF, lxml for xrdml, h5py for NeXus/HDF5; plain numbers are parsed by a small
numba scanner (:func:`_scan_numbers`, about 10x faster than ``np.loadtxt``/``np.fromstring`` and without
pandas' per-call overhead, which matters at thousands of files per second). xrdtools 0.1.1 (the only xrdml
library on PyPI) fails on numpy >= 2 and xylib-py has no wheels (its build needs an old SWIG), so Bruker RAW,
GSAS, UXD and the text layouts are read here from their published layouts (xylib's notes on Bruker RAW
v1-v4, the GSAS manual for STD/ESD/ALT/FXYE banks).

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "a.xy")
>>> _ = open(path, "w").write("# wavelength = 1.5406\\n10.0 5\\n10.02 7\\n10.04 6\\n")
>>> [p] = read_patterns(path)
>>> p.x.tolist(), p.intensity.tolist(), p.meta["wavelength_angstrom"], p.meta["format"]
([10.0, 10.02, 10.04], [5.0, 7.0, 6.0], 1.5406, 'xy')
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

#: Abscissa kinds a reader may return.
AXES = ("two_theta_deg", "q_per_angstrom", "d_angstrom")

#: Fewer points than this is not a powder pattern (e.g. a list of background points).
MIN_POINTS = 100


class ReaderError(ValueError):
    """A file that cannot be read as a powder pattern; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class Pattern(NamedTuple):
    """One measured pattern.

    Attributes
    ----------
    x : ndarray (n_points,) float64
        Abscissa, in the unit named by ``axis``, increasing.
    intensity : ndarray (n_points,) float64
        Intensity (counts or counts per second, any scale).
    axis : str
        One of :data:`AXES`: ``"two_theta_deg"``, ``"q_per_angstrom"`` or ``"d_angstrom"``.
    meta : dict
        Metadata found in the file: ``format`` (always), and where present ``wavelength_angstrom``,
        ``wavelength2_angstrom``, ``ka2_ratio``, ``instrument``, ``sample``, plus format-specific keys.
    """

    x: np.ndarray
    intensity: np.ndarray
    axis: str
    meta: dict

    @property
    def wavelength_angstrom(self) -> float | None:
        """The primary wavelength the file states, or ``None``."""
        return self.meta.get("wavelength_angstrom")

    def two_theta_deg(self, wavelength_angstrom: float | None = None) -> np.ndarray:
        """The abscissa as 2-theta in degrees.

        Bragg's law: ``d = lambda / (2 sin theta)`` and ``Q = 4 pi sin(theta) / lambda = 2 pi / d``,
        so ``2 theta = 2 asin(lambda Q / (4 pi)) = 2 asin(lambda / (2 d))``. Points beyond the
        reach of the wavelength (``sin theta > 1``) become NaN.

        Parameters
        ----------
        wavelength_angstrom : float, optional
            Needed for Q and d abscissae; defaults to the file's own wavelength.
        """
        if self.axis == "two_theta_deg":
            return self.x
        lam = wavelength_angstrom or self.wavelength_angstrom
        if not lam:
            raise ValueError(f"the pattern is on a {self.axis} axis and no wavelength is known to convert it "
                             "to 2-theta; pass a wavelength")
        with np.errstate(invalid="ignore", divide="ignore"):
            s = lam * self.x / (4 * np.pi) if self.axis == "q_per_angstrom" else lam / (2 * self.x)
            return np.degrees(2 * np.arcsin(np.where(s <= 1, s, np.nan)))


@dataclass(frozen=True)
class Format:
    """One entry of :data:`FORMATS`."""

    read: Callable[[str, bytes], list]
    extensions: tuple
    sniff: Callable[[bytes], bool] | None
    library: str
    description: str


# ------------------------------------------------------------------------------ helpers ----
_WAVELENGTH_RE = re.compile(
    rb"(?:wave\s*length|lambda|wl1?|k-?alpha1?|kalpha1?)[^=:\d\n]{0,30}[=:]?\s*([0-9]*\.[0-9]+)", re.I)


def _clean_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if v is not None and v != ""}


def _finish(path, x, y, axis, meta, min_points: int = MIN_POINTS) -> Pattern:
    """Common checks: float64, equal lengths, finite abscissa, sorted, enough points."""
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    y = np.ascontiguousarray(y, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ReaderError(path, f"abscissa has {x.size} points but intensity has {y.size}")
    if x.size < min_points:
        raise ReaderError(path, f"only {x.size} data points; a powder pattern needs at least {min_points} "
                                "(is this a peak list or background points?)")
    if not np.all(np.isfinite(x)):
        raise ReaderError(path, "the abscissa has non-finite values")
    if x[0] > x[-1]:
        x, y = x[::-1].copy(), y[::-1].copy()
    if np.any(np.diff(x) <= 0):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        keep = np.concatenate(([True], np.diff(x) > 0))
        x, y = x[keep], y[keep]
    return Pattern(x, y, axis, _clean_meta(meta))


def _wavelength_from_text(text: bytes) -> float | None:
    m = _WAVELENGTH_RE.search(text)
    if m:
        value = float(m.group(1))
        if 0.05 < value < 5.0:  # angstrom; anything else is not an X-ray/neutron wavelength
            return value
    return None


def _decode(data: bytes) -> bytes:
    """UTF-16/32 text (BOM) to ASCII-compatible bytes; other bytes unchanged."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16").encode("utf-8", "replace")
        except UnicodeDecodeError:
            return data
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:]
    return data


# ------------------------------------------------------------------- fast number scanner ----
_WORK = threading.local()


def _scan_numbers(buf: np.ndarray):
    """Run the numba-compiled scanner (compiled at first use, cached on disk) with per-thread work buffers,
    and return exact-size copies (a view would keep the whole work buffer alive with every pattern)."""
    need = buf.size // 2 + 2
    values = getattr(_WORK, "values", None)
    if values is None or values.size < need:
        _WORK.values = values = np.empty(max(need, 1 << 16), np.float64)
        _WORK.counts = np.empty(values.size, np.int32)
    n_values, n_lines, start, stop = _scanner()(buf, values, _WORK.counts)
    return values[:n_values].copy(), _WORK.counts[:n_lines].copy(), start, stop


_SCANNER = None


def _scanner():
    global _SCANNER
    if _SCANNER is None:
        import numba

        _SCANNER = numba.njit(cache=True, nogil=True)(_scan_numbers_py)
    return _SCANNER


def _scan_numbers_py(buf, values, counts):  # pragma: no cover - runs compiled
    """Scan lines of whitespace/comma/semicolon separated numbers, in one pass over the bytes.

    Fills ``values`` and ``counts`` (each at least ``buf.size // 2 + 2`` long) and returns
    ``(n_values, n_lines, data_start, data_stop)``: every number of the data block (the first run of
    lines made of numbers only; lines before it are the header, a text line after it ends the block; blank
    lines are skipped), the number of values on each data line, and the byte offsets of the block.
    Understands signs, decimals, exponents, ``nan`` and ``inf``; a mantissa keeps 18 significant digits.
    """
    n = buf.size
    pow10 = np.empty(23, np.float64)
    p = 1.0
    for k in range(23):
        pow10[k] = p
        p *= 10.0
    n_values = 0
    n_lines = 0
    data_start = -1
    data_stop = n
    line_start = 0
    line_first = 0
    line_ok = True
    i = 0
    while i <= n:
        c = buf[i] if i < n else 10
        if c == 10 or c == 13:
            cnt = n_values - line_first
            if line_ok and cnt > 0:
                if data_start < 0:
                    data_start = line_start
                counts[n_lines] = cnt
                n_lines += 1
            elif not line_ok:
                n_values = line_first
                if data_start >= 0:
                    data_stop = line_start
                    break
            i += 1
            line_start = i
            line_first = n_values
            line_ok = True
            continue
        if not line_ok or c == 32 or c == 9 or c == 44 or c == 59:
            i += 1
            continue
        # a token
        neg = False
        if c == 45 or c == 43:
            neg = c == 45
            i += 1
        mant = 0
        nd = 0
        exp10 = 0
        start_digits = i
        while i < n:
            d = np.int64(buf[i]) - 48
            if d < 0 or d > 9:
                break
            if nd < 18:
                mant = mant * 10 + d
                if mant > 0:
                    nd += 1
            else:
                exp10 += 1
            i += 1
        any_digit = i > start_digits
        if i < n and buf[i] == 46:
            i += 1
            s2 = i
            while i < n:
                d = np.int64(buf[i]) - 48
                if d < 0 or d > 9:
                    break
                if nd < 18:
                    mant = mant * 10 + d
                    if mant > 0:
                        nd += 1
                    exp10 -= 1
                i += 1
            any_digit = any_digit or i > s2
        if any_digit:
            if i < n and (buf[i] == 101 or buf[i] == 69):
                j = i + 1
                eneg = False
                if j < n and (buf[j] == 43 or buf[j] == 45):
                    eneg = buf[j] == 45
                    j += 1
                e = 0
                s3 = j
                while j < n:
                    d = np.int64(buf[j]) - 48
                    if d < 0 or d > 9:
                        break
                    e = e * 10 + d
                    j += 1
                if j > s3:
                    exp10 += -e if eneg else e
                    i = j
            v = float(mant)
            if exp10 > 0:
                v = v * pow10[exp10] if exp10 < 23 else v * 10.0 ** exp10
            elif exp10 < 0:
                if -exp10 < 23:
                    v = v / pow10[-exp10]
                elif exp10 > -300:
                    v = v / 10.0 ** (-exp10)
                else:
                    v = v / 10.0 ** (-exp10 - 300) / 1e300
            values[n_values] = -v if neg else v
            n_values += 1
        elif i + 3 <= n and (buf[i] | 32) == 110 and (buf[i + 1] | 32) == 97 and (buf[i + 2] | 32) == 110:
            values[n_values] = np.nan
            n_values += 1
            i += 3
        elif i + 3 <= n and (buf[i] | 32) == 105 and (buf[i + 1] | 32) == 110 and (buf[i + 2] | 32) == 102:
            values[n_values] = -np.inf if neg else np.inf
            n_values += 1
            i += 3
            while i < n and 97 <= (buf[i] | 32) <= 122:
                i += 1
        else:
            line_ok = False
            continue
        # token must end at a separator or end of line
        if i < n:
            c = buf[i]
            if not (c == 32 or c == 9 or c == 44 or c == 59 or c == 10 or c == 13):
                line_ok = False
    if data_start < 0:
        data_start = n
    return n_values, n_lines, data_start, data_stop


def parse_numbers(data: bytes):
    """Numbers of the first all-numeric block of lines in ``data``.

    Returns
    -------
    values : ndarray (n_values,) float64
    counts : ndarray (n_lines,) int32
        Numbers on each data line.
    header, trailer : bytes
        The text before and after the block.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    values, counts, start, stop = _scan_numbers(buf)
    return values, counts, data[:start], data[stop:]


# ----------------------------------------------------------------------- text columns ----
def _axis_from_header(header: bytes) -> str:
    """The abscissa named by the first column title of the last header line (``Q``, ``q(1/A)``, ``d``...)."""
    lines = header.strip().splitlines()
    if not lines:
        return "two_theta_deg"
    tokens = lines[-1].strip().lstrip(b"#!;% ").replace(b",", b" ").split()
    first = tokens[0].lower() if tokens else b""
    if re.fullmatch(rb"q(_?\(.*\)|_?\[.*\]|/.*|_inv.*)?", first):
        return "q_per_angstrom"
    if re.fullmatch(rb"d(_?\(.*\)|_?\[.*\]|[-_]?spacing.*)?", first):
        return "d_angstrom"
    return "two_theta_deg"


def _header_meta(header: bytes) -> dict:
    meta = {}
    wl = _wavelength_from_text(header)
    if wl:
        meta["wavelength_angstrom"] = wl
    for line in header.splitlines():
        s = line.strip().lstrip(b"#!;% ").strip()
        if b"=" in s or b":" in s:
            key, _, value = s.partition(b"=") if b"=" in s else s.partition(b":")
            k = key.strip().lower()
            v = value.strip().decode("utf-8", "replace")
            if k in (b"names", b"sample", b"sample name", b"sample_name", b"user sample name", b"name") and v:
                meta.setdefault("sample", v)
            elif k in (b"rruffid",):
                meta["rruff_id"] = v
            elif k in (b"instrument", b"diffractometer", b"diffractometer system") and v:
                meta.setdefault("instrument", v)
    return meta


def _leading_numbers(line: bytes) -> list:
    out = []
    for token in line.replace(b",", b" ").replace(b"=", b" ").split():
        try:
            out.append(float(token))
        except ValueError:
            break
    return out


def _counts_block(path, values, counts, ncol, header, meta) -> Pattern:
    """Counts only, ``ncol`` per line (ILL/PSI style): 2-theta from the nearest preceding line that begins
    with ``start step end`` giving no more points than there are counts (counts may be followed by esds)."""
    k = len(counts)
    while k > 0 and (counts[k - 1] == ncol or k == len(counts)):
        k -= 1
    ends = np.concatenate(([0], np.cumsum(counts)))
    candidates = [values[ends[i]:ends[i + 1]].tolist() for i in range(k)][::-1]
    candidates += [_leading_numbers(line) for line in reversed(header.splitlines())]
    data = values[ends[k]:]
    for numbers in candidates:
        if len(numbers) >= 3:
            start, step, end = numbers[:3]
            n = int(round((end - start) / step)) + 1 if step > 0 else -1
            if 0 < n <= data.size and n >= data.size // 2:
                meta["format"] = "step_scan"
                return _finish(path, start + step * np.arange(n), data[:n], "two_theta_deg", meta)
    raise ReaderError(path, f"{data.size} counts in lines of {ncol} and no 'start step end' line before them: "
                            "cannot tell the 2-theta of each point")


def _read_text(path, data: bytes, fmt: str = "xy") -> list:
    data = _decode(data)
    if b"\x00" in data[:4096]:
        raise ReaderError(path, "binary content where text columns were expected (wrong format or corrupt file)")
    values, counts, header, _ = parse_numbers(data)
    if counts.size == 0:
        raise ReaderError(path, "no block of numeric columns found (expected lines of '2theta intensity')")
    if b";" in data[len(header):len(header) + 4096] and counts.size and counts[0] == 4 \
            and b"." not in data[len(header):len(header) + 200]:
        # "1,4;18" -- semicolon columns with decimal commas
        fixed = data[len(header):].replace(b",", b".").replace(b";", b" ")
        values, counts, _, _ = parse_numbers(fixed)
    meta = {"format": fmt}
    meta.update(_header_meta(header))
    # step-scan layout: "start step end" then counts (one or several per line)
    if counts.size > 1 and counts[0] == 3 and np.all(counts[1:] == counts[1]) and counts[1] != 3:
        start, step, end = values[:3]
        n = int(round((end - start) / step)) + 1 if step > 0 else -1
        y = values[3:]
        if n > 0 and abs(y.size - n) <= 1:
            y = y[:n]
            meta["format"] = "step_scan" if fmt == "xy" else fmt
            return [_finish(path, start + step * np.arange(y.size), y, "two_theta_deg", meta)]
        raise ReaderError(path, f"'start step end' header ({start:g} {step:g} {end:g}) promises {n} points "
                                f"but {y.size} counts follow (truncated file?)")
    ncol = int(np.bincount(counts).argmax())
    if ncol > 3:
        return [_counts_block(path, values, counts, ncol, header, meta)]
    if ncol < 2:
        raise ReaderError(path, f"found a single column of {values.size} numbers and no 'start step end' "
                                "line: cannot tell the 2-theta of each point")
    if np.all(counts == ncol):
        table = values.reshape(-1, ncol)
    else:  # ragged: keep the rows with the usual number of columns
        ends = np.cumsum(counts)
        rows = np.flatnonzero(counts == ncol)
        idx = (ends[rows] - ncol)[:, None] + np.arange(ncol)
        table = values[idx]
    axis = _axis_from_header(header)
    return [_finish(path, table[:, 0], table[:, 1], axis, meta)]


def _read_rruff(path, data):
    return _read_text(path, data, "rruff")


def _sniff_rruff(head: bytes) -> bool:
    return head.lstrip().startswith(b"##")


# ----------------------------------------------------------------------------- xrdml ----
def _read_xrdml(path, data: bytes) -> list:
    from lxml import etree

    try:
        root = etree.fromstring(data, parser=etree.XMLParser(huge_tree=True, resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise ReaderError(path, f"not well-formed XML ({exc}); truncated or corrupt xrdml") from None

    def text(node, tag):
        found = node.find(f".//{{*}}{tag}")
        return found.text.strip() if found is not None and found.text else None

    def number(node, tag):
        t = text(node, tag)
        try:
            return float(t) if t is not None else None
        except ValueError:
            return None

    base = {"format": "xrdml"}
    sample = root.find("{*}sample")
    if sample is not None:
        base["sample"] = text(sample, "name") or text(sample, "id")
    for entry in root.iterfind("{*}comment/{*}entry"):
        if entry.text and entry.text.startswith("Diffractometer system="):
            base["instrument"] = entry.text.split("=", 1)[1].strip()
    patterns = []
    for measurement in root.iterfind("{*}xrdMeasurement"):
        meta = dict(base)
        wl = measurement.find("{*}usedWavelength")
        if wl is not None:
            meta["wavelength_angstrom"] = number(wl, "kAlpha1")
            meta["wavelength2_angstrom"] = number(wl, "kAlpha2")
            meta["ka2_ratio"] = number(wl, "ratioKAlpha2KAlpha1")
            meta["wavelength_intended"] = wl.get("intended")
        tube = measurement.find(".//{*}xRayTube")
        if tube is not None:
            meta.setdefault("instrument", tube.get("name"))
            meta["anode"] = text(tube, "anodeMaterial")
        for scan in measurement.iterfind("{*}scan"):
            points = scan.find("{*}dataPoints")
            if points is None:
                raise ReaderError(path, "an xrdml <scan> without <dataPoints> (truncated file?)")
            y_node = points.find("{*}counts")
            if y_node is None:
                y_node = points.find("{*}intensities")
            if y_node is None or not y_node.text:
                raise ReaderError(path, "an xrdml scan without <counts> or <intensities>")
            y, counts, _, trailer = parse_numbers(y_node.text.encode())
            if trailer.strip() or counts.size != 1:
                raise ReaderError(path, "the xrdml intensities are not a single list of numbers")
            atten = points.find("{*}beamAttenuationFactors")
            if atten is not None and atten.text:
                factors, _, _, _ = parse_numbers(atten.text.encode())
                if factors.size == y.size:
                    y = y * factors
            x = None
            for pos in points.iterfind("{*}positions"):
                if pos.get("axis") != "2Theta":
                    continue
                listed = pos.find("{*}listPositions")
                if listed is not None and listed.text:
                    x, _, _, _ = parse_numbers(listed.text.encode())
                else:
                    start, end = number(pos, "startPosition"), number(pos, "endPosition")
                    common = number(pos, "commonPosition")
                    if start is not None and end is not None:
                        x = np.linspace(start, end, y.size)
                    elif common is not None:
                        raise ReaderError(path, "the xrdml scan keeps 2Theta fixed (a rocking curve, not a "
                                                "powder pattern)")
            if x is None:
                raise ReaderError(path, f"the xrdml scan (scanAxis={scan.get('scanAxis')!r}) has no 2Theta "
                                        "positions")
            smeta = dict(meta, scan_axis=scan.get("scanAxis"), intensity_unit=y_node.get("unit"))
            patterns.append(_finish(path, x, y, "two_theta_deg", smeta))
    if not patterns:
        raise ReaderError(path, "no <xrdMeasurement>/<scan> with data in this xrdml file")
    return patterns


def _sniff_xrdml(head: bytes) -> bool:
    return b"<xrdMeasurements" in head or (b"<?xml" in head[:100] and b"xrdml" in head.lower())


# ------------------------------------------------------------------------ Bruker RAW ----
def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("latin-1").strip()


def _read_bruker_raw(path, data: bytes) -> list:
    head = data[:4]
    try:
        if head == b"RAW ":
            return _raw_v1(path, data)
        if head == b"RAW2":
            return _raw_v2(path, data)
        if data[:7] == b"RAW1.01":
            return _raw_v3(path, data)
        if data[:7] == b"RAW4.00":
            return _raw_v4(path, data)
    except struct.error:
        raise ReaderError(path, "Bruker RAW file ends inside a header (truncated file)") from None
    raise ReaderError(path, f"not a Bruker RAW file: starts with {data[:7]!r}, expected 'RAW ', 'RAW2', "
                            "'RAW1.01' or 'RAW4.00'")


def _raw_counts(path, data, offset, n):
    end = offset + 4 * n
    if n <= 0 or end > len(data):
        raise ReaderError(path, f"Bruker RAW range promises {n} points at byte {offset} but the file has "
                                f"{len(data)} bytes (truncated file)")
    return np.frombuffer(data, "<f4", n, offset).astype(np.float64), end


def _raw_v1(path, data):
    patterns, pos, following = [], 4, 1
    while following:
        (steps,) = struct.unpack_from("<I", data, pos)
        if patterns and steps == struct.unpack("<I", b"RAW ")[0]:
            pos += 4
            (steps,) = struct.unpack_from("<I", data, pos)
        _t, step, _mode, _x, start = struct.unpack_from("<ffIIf", data, pos + 4)
        sample = _cstr(data[pos + 36:pos + 68])
        ka1, ka2 = struct.unpack_from("<ff", data, pos + 68)
        (following,) = struct.unpack_from("<I", data, pos + 148)
        y, pos = _raw_counts(path, data, pos + 152, steps)
        meta = {"format": "bruker_raw", "version": 1, "sample": sample, "range": len(patterns),
                "wavelength_angstrom": ka1 or None, "wavelength2_angstrom": ka2 or None}
        patterns.append(_finish(path, start + step * np.arange(steps), y, "two_theta_deg", meta))
    return patterns


def _raw_v2(path, data):
    (n_ranges,) = struct.unpack_from("<H", data, 4)
    anode = _cstr(data[188:190])
    ka1, ka2, ratio = struct.unpack_from("<fff", data, 190)
    patterns, pos = [], 256
    for r in range(n_ranges):
        header_len, steps = struct.unpack_from("<HH", data, pos)
        if header_len <= 48:
            raise ReaderError(path, f"Bruker RAW v2 range {r} has a {header_len}-byte header (corrupt file)")
        step, start = struct.unpack_from("<ff", data, pos + 12)
        y, pos = _raw_counts(path, data, pos + header_len, steps)
        meta = {"format": "bruker_raw", "version": 2, "anode": anode, "range": r,
                "wavelength_angstrom": ka1 or None, "wavelength2_angstrom": ka2 or None,
                "ka2_ratio": ratio or None}
        patterns.append(_finish(path, start + step * np.arange(steps), y, "two_theta_deg", meta))
    return patterns


def _raw_v3(path, data):
    (n_ranges,) = struct.unpack_from("<I", data, 12)
    sample = _cstr(data[326:386])
    site = _cstr(data[108:326])
    anode = _cstr(data[608:612])
    avg, ka1, ka2, _beta, ratio = struct.unpack_from("<5d", data, 616)
    patterns, pos = [], 712
    for r in range(n_ranges):
        header_len, steps = struct.unpack_from("<II", data, pos)
        if header_len != 304:
            raise ReaderError(path, f"Bruker RAW v3 range {r} header length {header_len}, expected 304 "
                                    "(corrupt or truncated file)")
        start_2theta = struct.unpack_from("<d", data, pos + 16)[0]
        step = struct.unpack_from("<d", data, pos + 176)[0]
        used = struct.unpack_from("<d", data, pos + 240)[0]
        (supplementary,) = struct.unpack_from("<I", data, pos + 256)
        y, pos = _raw_counts(path, data, pos + header_len + supplementary, steps)
        meta = {"format": "bruker_raw", "version": 3, "sample": sample, "instrument": site, "anode": anode,
                "range": r, "wavelength_angstrom": ka1 if ka1 > 0 else (used if used > 0 else None),
                "wavelength2_angstrom": ka2 if ka2 > 0 else None, "ka2_ratio": ratio if ratio > 0 else None,
                "wavelength_mean_angstrom": avg if avg > 0 else None}
        patterns.append(_finish(path, start_2theta + step * np.arange(steps), y, "two_theta_deg", meta,
                                min_points=2 if n_ranges > 1 else MIN_POINTS))
    if not patterns:
        raise ReaderError(path, "Bruker RAW v3 file with no data range")
    return patterns


def _raw_v4(path, data):
    pos = 61
    meta = {"format": "bruker_raw", "version": 4}
    (seg,) = struct.unpack_from("<I", data, pos)
    while seg not in (0, 160):
        (seg_len,) = struct.unpack_from("<I", data, pos + 4)
        if seg_len < 8:
            raise ReaderError(path, f"Bruker RAW v4 segment of {seg_len} bytes at {pos} (corrupt file)")
        if seg == 30 and seg_len >= 120:
            avg, ka1, ka2, _beta, ratio = struct.unpack_from("<5d", data, pos + 72)
            meta.update(wavelength_angstrom=ka1 or None, wavelength2_angstrom=ka2 or None,
                        ka2_ratio=ratio or None, anode=_cstr(data[pos + 116:pos + 120]))
        elif seg == 10 and seg_len >= 36:
            tag = _cstr(data[pos + 12:pos + 36])
            if tag.lower() in ("sampleid", "sample_id", "samplename"):
                meta["sample"] = _cstr(data[pos + 36:pos + seg_len])
        pos += seg_len
        (seg,) = struct.unpack_from("<I", data, pos)
    patterns = []
    while seg in (0, 160):
        scan_type = _cstr(data[pos + 32:pos + 56])
        start, step = struct.unpack_from("<dd", data, pos + 72)
        (steps,) = struct.unpack_from("<I", data, pos + 88)
        used = struct.unpack_from("<d", data, pos + 112)[0]
        datum, hdr = struct.unpack_from("<II", data, pos + 136)
        pos += 160
        if datum != 4:
            raise ReaderError(path, f"Bruker RAW v4 datum size {datum}, expected 4 (float32)")
        y, end = _raw_counts(path, data, pos + hdr, steps)
        if scan_type in ("Locked Coupled", "Unlocked Coupled", "") or "2Theta" in scan_type \
                or "Coupled" in scan_type:
            m = dict(meta, range=len(patterns), scan_type=scan_type)
            if not m.get("wavelength_angstrom") and used > 0:
                m["wavelength_angstrom"] = used
            patterns.append(_finish(path, start + step * np.arange(steps), y, "two_theta_deg", m))
        pos = end
        if pos + 4 > len(data):
            break
        (seg,) = struct.unpack_from("<I", data, pos)
    if not patterns:
        raise ReaderError(path, "Bruker RAW v4 file with no coupled 2-theta range")
    return patterns


def _sniff_bruker_raw(head: bytes) -> bool:
    return head[:4] in (b"RAW ", b"RAW2") or head[:7] in (b"RAW1.01", b"RAW4.00")


# ------------------------------------------------------------------------ Bruker UXD ----
def _read_uxd(path, data: bytes) -> list:
    data = _decode(data)
    blocks = re.split(rb"^\s*_(?:2THETA)?COUNTS\s*$|^\s*_2THETACPS\s*$|^\s*_CPS\s*$", data, flags=re.M)
    if len(blocks) < 2:
        raise ReaderError(path, "a UXD file without a _COUNTS or _2THETACOUNTS data section")
    keys = {}
    patterns = []
    for i, block in enumerate(blocks[:-1]):
        for k, v in re.findall(rb"^\s*_([A-Z0-9_]+)\s*=\s*'?([^'\r\n]*)'?", block, flags=re.M):
            keys[k.decode()] = v.decode("latin-1").strip()
        values, counts, _, _ = parse_numbers(blocks[i + 1])
        if counts.size == 0:
            raise ReaderError(path, f"UXD range {i} has no numbers")
        meta = {"format": "bruker_uxd", "sample": keys.get("SAMPLE"), "anode": keys.get("ANODE"), "range": i}
        for key, name in (("WL1", "wavelength_angstrom"), ("WL2", "wavelength2_angstrom"),
                          ("WLRATIO", "ka2_ratio")):
            try:
                meta[name] = float(keys[key]) or None
            except (KeyError, ValueError):
                pass
        if np.all(counts == 2):
            table = values.reshape(-1, 2)
            x, y = table[:, 0], table[:, 1]
        else:
            try:
                start, step = float(keys.get("START", keys.get("2THETA"))), float(keys["STEPSIZE"])
            except (KeyError, TypeError, ValueError):
                raise ReaderError(path, "UXD counts without _START/_STEPSIZE") from None
            y = values
            x = start + step * np.arange(y.size)
        patterns.append(_finish(path, x, y, "two_theta_deg", meta))
    return patterns


def _sniff_uxd(head: bytes) -> bool:
    return b"_FILEVERSION" in head or (b"_2THETA" in head and b"_STEPSIZE" in head)


# ----------------------------------------------------------------------------- GSAS ----
_BANK_RE = re.compile(rb"^BANK\s+(\d+)\s+(\d+)\s+(\d+)\s+(\w+)[ \t]*([^\r\n]*)\r?$", re.M)


def _read_gsas(path, data: bytes) -> list:
    """GSAS raw files: BANK records with CONST/CONS binning (positions in centidegrees) and STD, ESD, ALT or
    FXYE data (GSAS manual, "Powder data file formats")."""
    data = _decode(data)
    banks = list(_BANK_RE.finditer(data))
    if not banks:
        raise ReaderError(path, "no 'BANK' record: not a GSAS powder file")
    title = data[:banks[0].start()]
    base = {"format": "gsas", "sample": title.splitlines()[0].decode("latin-1").strip() if title.strip() else None}
    wl = _wavelength_from_text(title)
    if wl:
        base["wavelength_angstrom"] = wl
    patterns = []
    for i, m in enumerate(banks):
        body_end = banks[i + 1].start() if i + 1 < len(banks) else len(data)
        body = data[m.end():body_end]
        nchan, nrec, binning = int(m.group(2)), int(m.group(3)), m.group(4).decode().upper()
        rest = m.group(5).split()
        kind = rest[-1].decode().upper() if rest and not re.match(rb"^[-+.\d]", rest[-1]) else "STD"
        if binning not in ("CONST", "CONS", "RALF", "SLOG") and kind != "FXYE":
            raise ReaderError(path, f"GSAS bank {m.group(1).decode()} has {binning} binning; only "
                                    "constant-wavelength CONST/CONS and FXYE banks are read")
        meta = dict(base, bank=int(m.group(1)), gsas_type=kind)
        if kind in ("FXYE", "FXY"):
            values, counts, _, _ = parse_numbers(body)
            ncol = 3 if kind == "FXYE" else 2
            table = values[: values.size // ncol * ncol].reshape(-1, ncol)
            if table.shape[0] < nchan:
                raise ReaderError(path, f"GSAS FXYE bank promises {nchan} points, found {table.shape[0]} "
                                        "(truncated file)")
            x, y = table[:nchan, 0] / 100.0, table[:nchan, 1]
        elif binning in ("CONST", "CONS"):
            start, step = float(rest[0]) / 100.0, float(rest[1]) / 100.0
            lines = body.splitlines()
            lines = [ln for ln in lines if ln.strip()][:nrec]
            if kind == "ESD":
                width, per = 8, 10
            else:
                width, per = 8, 10
            fields = []
            for ln in lines:
                ln = ln.rstrip(b"\r\n").ljust(width * per)
                fields.extend(ln[j:j + width] for j in range(0, width * per, width))
            if kind == "ESD":
                vals = fields[0::2]
            else:
                vals = [f[2:] for f in fields]  # STD: I2 counter number + F6 counts
            try:
                y = np.array([float(v) if v.strip() else np.nan for v in vals[:nchan]])
            except ValueError:
                raise ReaderError(path, f"GSAS bank {meta['bank']}: non-numeric {kind} field") from None
            if y.size < nchan or np.isnan(y).sum() > 0:
                good = int(np.isfinite(y).sum())
                raise ReaderError(path, f"GSAS bank promises {nchan} points, found {good} (truncated file)")
            x = start + step * np.arange(nchan)
        else:
            raise ReaderError(path, f"GSAS {binning} {kind} banks are not supported; export FXYE")
        patterns.append(_finish(path, x, y, "two_theta_deg", meta))
    return patterns


def _sniff_gsas(head: bytes) -> bool:
    return bool(re.search(rb"^BANK\s+\d+\s+\d+\s+\d+\s+\w+", head, re.M))


# ---------------------------------------------------------------------------- pdCIF ----
_PD_X = ("_pd_meas_2theta_scan", "_pd_proc_2theta_corrected", "_pd_meas_angle_2theta", "_pd_meas_2theta",
         "_pd_proc_2theta")
_PD_Y = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total",
         "_pd_proc_intensity_net", "_pd_meas_counts_net", "_pd_meas_intensity_net", "_pd_meas_counts_sample")
_PD_D = ("_pd_proc_d_spacing",)


def _cif_numbers(values) -> np.ndarray:
    from gemmi import cif

    return np.array([cif.as_number(v) for v in values], dtype=np.float64)


def _read_pdcif(path, data: bytes) -> list:
    from gemmi import cif

    try:
        doc = cif.read_string(_decode(data).decode("utf-8", "replace"))
    except (RuntimeError, ValueError) as exc:
        raise ReaderError(path, f"not a readable CIF ({str(exc).splitlines()[0][:200]})") from None
    file_wl = None
    for block in doc:
        v = block.find_value("_diffrn_radiation_wavelength") or block.find_value("_pd_proc_wavelength")
        if v is None:
            col = block.find_values("_diffrn_radiation_wavelength_wavelength") or \
                block.find_values("_diffrn_radiation_wavelength")
            v = col[0] if col and len(col) else None
        if v is not None and not math.isnan(cif.as_number(v)):
            file_wl = file_wl or cif.as_number(v)
    patterns = []
    for block in doc:
        ytag = next((t for t in _PD_Y if block.find_values(t)), None)
        if ytag is None:
            continue
        y = _cif_numbers(block.find_values(ytag))
        meta = {"format": "pdcif", "block": block.name, "intensity_tag": ytag,
                "sample": cif.as_string(block.find_value("_pd_spec_id") or "") or
                cif.as_string(block.find_value("_chemical_name_mineral") or "") or block.name,
                "instrument": cif.as_string(block.find_value("_diffrn_measurement_device_type") or "")}
        wl = block.find_value("_diffrn_radiation_wavelength") or block.find_value("_pd_proc_wavelength")
        meta["wavelength_angstrom"] = cif.as_number(wl) if wl is not None else file_wl
        if meta["wavelength_angstrom"] is not None and math.isnan(meta["wavelength_angstrom"]):
            meta["wavelength_angstrom"] = file_wl
        xtag = next((t for t in _PD_X if block.find_values(t)), None)
        axis = "two_theta_deg"
        if xtag is not None:
            x = _cif_numbers(block.find_values(xtag))
        else:
            rng = [block.find_value(f"_pd_{k}_2theta_range_{e}") for k in ("meas", "proc")
                   for e in ("min", "max", "inc")]
            lo, hi, inc = (rng[0:3] if rng[0] is not None else rng[3:6])
            dtag = next((t for t in _PD_D if block.find_values(t)), None)
            if lo is not None and inc is not None:
                x = cif.as_number(lo) + cif.as_number(inc) * np.arange(y.size)
            elif dtag is not None:
                x, axis = _cif_numbers(block.find_values(dtag)), "d_angstrom"
            else:
                raise ReaderError(path, f"pdCIF block {block.name!r} has {ytag} but no 2-theta "
                                        f"({', '.join(_PD_X)}, or _pd_meas_2theta_range_*)")
        ok = np.isfinite(y) & np.isfinite(x)
        patterns.append(_finish(path, x[ok], y[ok], axis, meta))
    if not patterns:
        raise ReaderError(path, f"no data block with measured intensities ({', '.join(_PD_Y[:4])}, ...); "
                                "a structure CIF without powder data?")
    return patterns


def _sniff_pdcif(head: bytes) -> bool:
    return b"data_" in head and (b"_pd_" in head or b"_diffrn" in head or b"_cell_" in head)


# --------------------------------------------------------------------------- NeXus ----
def _axis_kind(name: str, units: str) -> tuple[str, float] | None:
    u = units.lower().replace(" ", "")
    n = name.lower()
    if u in ("deg", "degree", "degrees", "°") or n in ("two_theta", "2theta", "tth", "twotheta", "polar_angle"):
        return "two_theta_deg", 1.0
    if u in ("1/angstrom", "angstrom^-1", "1/a", "a^-1", "1/å", "å^-1", "invangstrom") or (n == "q" and not u):
        return "q_per_angstrom", 1.0
    if u in ("1/nm", "nm^-1", "invnm"):
        return "q_per_angstrom", 0.1
    if u in ("angstrom", "a", "å") or n in ("d", "d_spacing", "dspacing"):
        return "d_angstrom", 1.0
    if u == "nm" and n.startswith("d"):
        return "d_angstrom", 10.0
    if n == "q":
        return "q_per_angstrom", 1.0
    return None


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return " ".join(_attr_str(v) for v in value.ravel())
    return str(value)


def _read_nexus(path, data: bytes) -> list:
    import io

    import h5py

    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise ReaderError(path, f"not a readable HDF5 file ({exc}); truncated?") from None
    patterns = []
    with f:
        found = {"wavelength_angstrom": None, "sample": None, "instrument": None}
        nxdata = []

        def visit(name, obj):
            cls = _attr_str(obj.attrs.get("NX_class", ""))
            leaf = name.rsplit("/", 1)[-1].lower()
            if isinstance(obj, h5py.Group) and cls == "NXdata":
                nxdata.append(obj)
            elif isinstance(obj, h5py.Dataset):
                if leaf in ("wavelength", "incident_wavelength") and obj.size >= 1 and \
                        found["wavelength_angstrom"] is None:
                    value = float(np.ravel(obj[()])[0])
                    unit = _attr_str(obj.attrs.get("units", "angstrom")).lower()
                    found["wavelength_angstrom"] = value * 10 if unit == "nm" else value
                elif leaf == "name" and "/sample" in "/" + name.lower() and found["sample"] is None:
                    found["sample"] = _attr_str(obj[()])
                elif leaf == "name" and "instrument" in name.lower() and found["instrument"] is None:
                    found["instrument"] = _attr_str(obj[()])

        f.visititems(visit)
        for group in nxdata:
            signal = _attr_str(group.attrs.get("signal", ""))
            if not signal:
                signal = next((k for k, v in group.items() if isinstance(v, h5py.Dataset)
                               and str(v.attrs.get("signal", "")) in ("1", "b'1'")), "")
            if signal not in group:
                continue
            y = np.asarray(group[signal][()], dtype=np.float64)
            axes = group.attrs.get("axes", None)
            axes = _attr_str(axes).replace(",", " ").replace(":", " ").split() if axes is not None else \
                _attr_str(group[signal].attrs.get("axes", "")).replace(",", " ").replace(":", " ").split()
            kind = None
            for ax in reversed(axes):
                if ax in group and ax != ".":
                    units = _attr_str(group[ax].attrs.get("units", ""))
                    kind = _axis_kind(ax, units)
                    if kind is not None:
                        x = np.asarray(group[ax][()], dtype=np.float64).ravel() * kind[1]
                        break
            if kind is None:
                raise ReaderError(path, f"NXdata {group.name} has no 2-theta, Q or d axis with units "
                                        f"(axes={axes})")
            if y.ndim == 1:
                y = y[None, :]
            y = y.reshape(-1, y.shape[-1])
            if y.shape[-1] != x.size:
                raise ReaderError(path, f"NXdata {group.name}: signal rows have {y.shape[-1]} points, axis "
                                        f"has {x.size}")
            for k, row in enumerate(y):
                meta = dict(found, format="nexus", nxdata=group.name, row=k)
                patterns.append(_finish(path, x, row, kind[0], meta))
    if not patterns:
        raise ReaderError(path, "no NXdata group with a 1-D or stacked signal and a 2-theta/Q/d axis")
    return patterns


def _sniff_nexus(head: bytes) -> bool:
    return head[:8] == b"\x89HDF\r\n\x1a\n"


# -------------------------------------------------------------------------- registry ----
#: Format name -> :class:`Format`. Order matters for detection: content sniffers are tried in this order.
FORMATS: dict[str, Format] = {
    "bruker_raw": Format(_read_bruker_raw, (".raw",), _sniff_bruker_raw, "own (xylib's layout notes)",
                         "Bruker/Siemens DIFFRAC RAW v1, v2, v3 (RAW1.01), v4 (RAW4.00), binary"),
    "nexus": Format(_read_nexus, (".nxs", ".h5", ".hdf5", ".hdf", ".nx5"), _sniff_nexus, "h5py",
                    "NeXus/HDF5 NXdata: 1-D patterns or stacks (n, n_points)"),
    "xrdml": Format(_read_xrdml, (".xrdml",), _sniff_xrdml, "lxml",
                    "PANalytical XRDML 1.x/2.x: counts or intensities, start/end or listed positions"),
    "gsas": Format(_read_gsas, (".gsas", ".gsa", ".gss", ".xra", ".fxye", ".fxy", ".cwn"), _sniff_gsas,
                   "own (GSAS manual)", "GSAS powder data: CONST STD/ESD banks (centidegrees) and FXYE"),
    "bruker_uxd": Format(_read_uxd, (".uxd",), _sniff_uxd, "own", "Bruker DIFFRAC ASCII (UXD)"),
    "pdcif": Format(_read_pdcif, (".cif", ".pdcif", ".rtv"), _sniff_pdcif, "gemmi.cif",
                    "powder CIF: _pd_meas_* / _pd_proc_* loops, one pattern per data block"),
    "rruff": Format(_read_rruff, (), _sniff_rruff, "own (numba scanner)",
                    "RRUFF-style text: '##KEY=value' header lines, then 2-theta intensity columns"),
    "xy": Format(_read_text, (".xy", ".xye", ".dat", ".csv", ".txt", ".tsv", ".asc", ".chi"), None,
                 "own (numba scanner)", "two/three-column text, any header, space/tab/comma separated; "
                 "'start step end' then counts (step scan)"),
}


#: Formats recognised by a magic number / root element only (never by extension alone).
_MAGIC_FORMATS = ("bruker_raw", "nexus", "xrdml")


def detect_format(path, head: bytes) -> str:
    """Name of the :data:`FORMATS` entry for a file, from its first bytes, then its extension.

    Raises
    ------
    ReaderError
        For empty files and binary content no reader understands.
    """
    if not head:
        raise ReaderError(path, "empty file")
    for name, fmt in FORMATS.items():
        if fmt.sniff is not None and fmt.sniff(head):
            return name
    ext = os.path.splitext(str(path))[1].lower()
    for name, fmt in FORMATS.items():
        # formats with a magic number are never chosen by extension alone: without it the name is wrong
        if ext in fmt.extensions and name not in _MAGIC_FORMATS:
            return name
    text = _decode(head)
    if b"\x00" in text[:1024] or sum(b < 9 for b in text[:1024]) > 0:
        raise ReaderError(path, f"binary content in a {ext or 'extension-less'} file that no reader "
                                f"recognises (known formats: {', '.join(FORMATS)})")
    return "xy"


def read_patterns(path, format: str | None = None) -> list:
    """Read every pattern of one measured file.

    Parameters
    ----------
    path : str or Path
    format : str, optional
        A :data:`FORMATS` key; detected from the content and the extension when omitted.

    Returns
    -------
    list of Pattern

    Raises
    ------
    ReaderError
        Whatever goes wrong (missing, unreadable, truncated, unknown format), naming the file and the reason.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ReaderError(path, f"cannot open: {exc.strerror or exc}") from None
    return read_bytes(path, data, format)


def read_bytes(path, data: bytes, format: str | None = None) -> list:
    """Like :func:`read_patterns` for content already in memory (``path`` is used for messages/extension)."""
    if format is None:
        format = detect_format(path, data[:4096])
    elif format not in FORMATS:
        raise ReaderError(path, f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    try:
        return FORMATS[format].read(path, data)
    except ReaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader bug or odd content becomes a reason, never a crash
        raise ReaderError(path, f"{format} reader failed: {type(exc).__name__}: {exc}") from None
