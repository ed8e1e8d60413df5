"""Convert public raw traces into the canonical request/rate CSVs (see docs/simulator.md).

- azure: AzurePublicDataset `AzureLLMInferenceTrace_{code,conv}.csv` (TIMESTAMP,ContextTokens,GeneratedTokens)
- mooncake: Mooncake FAST'25 `*_trace.jsonl` ({"timestamp": ms, "input_length", "output_length", ...})
- servegen: ServeGen `data/language/<category>/chunk-<client>-{trace.csv,dataset.json}` as a directory or
  the released .tar.gz; the clients of one category are aggregated into one rate trace.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import tarfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from leadtime.sim.traces import TraceError

FORMATS = ("azure", "mooncake", "servegen")

# ServeGen clients are aggregated per window within bands of similar inter-arrival CV: a smooth client
# and a very bursty one do not add up to a gamma process of any single CV, so each band gets its own
# row (rows of one window add up in the rate CSV).
CV_BANDS = (1.5, 3.0, 10.0, float("inf"))

# Token-length CDFs are mixed on this grid (every length to 1,024 tokens, then 1.7% steps to 1M): the
# p95 of a window is the p95 of the rate-weighted mixture of its clients' length PDFs, read off the
# grid (exact below 1,024 tokens, within a step above).
TOKEN_GRID = np.unique(np.concatenate((np.arange(1.0, 1025.0), np.round(np.geomspace(1024.0, 2.0**20, 400)))))


def import_trace(fmt: str, src: str | Path, out: str | Path, *, category: str | None = None) -> int:
    """Convert `src` (raw `fmt` trace) into the canonical CSV at `out`; returns rows written."""
    src = Path(src)
    if not src.exists():
        raise TraceError(f"{src}: no such file or directory")
    if fmt == "azure":
        header, rows = ["arrival_s", "input_tokens", "output_tokens"], list(_azure_rows(src))
    elif fmt == "mooncake":
        header, rows = ["arrival_s", "input_tokens", "output_tokens"], list(_mooncake_rows(src))
    elif fmt == "servegen":
        header = ["start_s", "duration_s", "rate_rps", "input_tokens", "output_tokens", "iat_cv",
                  "input_p95", "output_p95"]
        rows = servegen_rows(src, category)
    else:
        raise TraceError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if not rows:
        raise TraceError(f"{src}: no requests found")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        import gzip

        handle: io.TextIOBase = io.TextIOWrapper(gzip.GzipFile(out, "wb", mtime=0), encoding="utf-8")
    else:
        handle = open(out, "w", encoding="utf-8", newline="")
    with handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def _azure_rows(src: Path) -> Iterator[list[str]]:
    with open(src, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= set(reader.fieldnames):
            raise TraceError(f"{src}:1: not an Azure LLM trace (need TIMESTAMP,ContextTokens,GeneratedTokens)")
        first: datetime | None = None
        for line_no, row in enumerate(reader, start=2):
            try:
                # 100-ns precision has 7 fractional digits; datetime takes 6.
                stamp = datetime.fromisoformat(row["TIMESTAMP"].strip()[:26])
                context, generated = int(row["ContextTokens"]), int(row["GeneratedTokens"])
            except (ValueError, TypeError):
                raise TraceError(f"{src}:{line_no}: bad row {row}") from None
            first = first or stamp
            yield [f"{(stamp - first).total_seconds():.3f}", str(context), str(generated)]


def _mooncake_rows(src: Path) -> Iterator[list[str]]:
    with open(src, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                at_s = float(record["timestamp"]) / 1000.0
                yield [f"{at_s:.3f}", str(int(record["input_length"])), str(int(record["output_length"]))]
            except (ValueError, KeyError, TypeError):
                raise TraceError(f"{src}:{line_no}: not a Mooncake trace line") from None


_CHUNK = re.compile(r"(?:^|/)data/[^/]+/([^/]+)/chunk-(\d+)-(trace\.csv|dataset\.json)$")


def _servegen_files(src: Path) -> dict[str, dict[str, dict[str, str]]]:
    """{category: {client: {"trace.csv"|"dataset.json": text}}} from a directory or a tarball."""
    found: dict[str, dict[str, dict[str, str]]] = {}

    def add(name: str, read) -> None:
        match = _CHUNK.search(name)
        if match:
            category, client, kind = match.groups()
            found.setdefault(category, {}).setdefault(client, {})[kind] = read()

    if src.is_dir():
        for path in sorted(src.rglob("chunk-*")):
            add(path.as_posix(), path.read_text)
    else:
        try:
            with tarfile.open(src, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        add(member.name, lambda m=member: tar.extractfile(m).read().decode("utf-8"))
        except tarfile.TarError as err:
            raise TraceError(f"{src}: not a ServeGen tarball or directory ({err})") from None
    return found


def _pdf_mean(text: str) -> float | None:
    pdf = ast.literal_eval(text) if text and text != "{}" else {}
    total = sum(pdf.values())
    return sum(float(k) * p for k, p in pdf.items()) / total if total > 0 else None


def _pdf_cdf(text: str) -> np.ndarray | None:
    """The token-length CDF of a ServeGen PDF on TOKEN_GRID (None for an empty PDF)."""
    pdf = ast.literal_eval(text) if text and text != "{}" else {}
    total = sum(pdf.values())
    if total <= 0:
        return None
    lengths = np.asarray(sorted(pdf), dtype=float)
    cumulative = np.cumsum([pdf[k] for k in sorted(pdf)]) / total
    at = np.searchsorted(lengths, TOKEN_GRID, side="right")
    return np.where(at > 0, cumulative[np.maximum(at - 1, 0)], 0.0)


def _grid_quantile(cdf: np.ndarray, q: float) -> float:
    return float(TOKEN_GRID[min(int(np.searchsorted(cdf, q * cdf[-1])), len(TOKEN_GRID) - 1)])


_Period = tuple[float, float | None, float | None, str, str]  # start, mean in, mean out, pdf texts


def _token_means(dataset_text: str | None) -> list[_Period]:
    """(period start s, mean input, mean output, input PDF, output PDF) per period of one client."""
    if not dataset_text:
        return []
    periods = []
    for start, entry in json.loads(dataset_text).items():
        inp, out = entry.get("input_tokens", "{}"), entry.get("output_tokens", "{}")
        periods.append((float(start), _pdf_mean(inp), _pdf_mean(out), inp, out))
    return sorted(periods)


def _nearest_period(periods: list[_Period], at_s: float, which: int) -> _Period | None:
    best: tuple[float, _Period] | None = None
    for period in periods:
        start, value = period[0], period[which]
        if value is not None and (best is None or abs(start - at_s) < best[0] or start <= at_s):
            if best is None or start <= at_s or abs(start - at_s) < best[0]:
                best = (abs(start - at_s), period)
    return None if best is None else best[1]


def _nearest(periods: list[_Period], at_s: float, which: int) -> float | None:
    period = _nearest_period(periods, at_s, which)
    return None if period is None else period[which]


def servegen_rows(src: Path, category: str | None) -> list[list[str]]:
    files = _servegen_files(src)
    if not files:
        raise TraceError(f"{src}: no ServeGen chunk-*-trace.csv files found")
    if category is None:
        if len(files) > 1:
            raise TraceError(f"{src}: several categories ({', '.join(sorted(files))}); pick one with --category")
        category = next(iter(files))
    if category not in files:
        raise TraceError(f"{src}: no category {category!r} (found {', '.join(sorted(files))})")
    windows: dict[tuple[float, int], list[float]] = {}  # (start, cv band) -> [rate, rate*cv^2, rate*in, rate*out]
    mixtures: dict[tuple[float, int], list[np.ndarray | None]] = {}  # (start, band) -> rate-weighted CDFs
    client_windows: list[tuple[float, float, float, float | None, float | None]] = []
    client_cdfs: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    cdf_cache: dict[str, np.ndarray | None] = {}

    def cdf_of(period: _Period | None, which: int) -> np.ndarray | None:
        if period is None:
            return None
        text = period[which + 2]
        if text not in cdf_cache:
            cdf_cache[text] = _pdf_cdf(text)
        return cdf_cache[text]

    starts: set[float] = set()
    for client, parts in files[category].items():
        if "trace.csv" not in parts:
            continue
        periods = _token_means(parts.get("dataset.json"))
        for line_no, row in enumerate(csv.reader(io.StringIO(parts["trace.csv"])), start=1):
            if not row:
                continue
            try:
                start, rate = float(row[0]), float(row[1])
                cv = float(row[2]) if len(row) > 2 and row[2].strip() else 1.0
            except ValueError:
                raise TraceError(f"chunk-{client}-trace.csv:{line_no}: bad row {','.join(row)}") from None
            starts.add(start)
            if rate > 0:
                nearest_in, nearest_out = _nearest_period(periods, start, 1), _nearest_period(periods, start, 2)
                client_windows.append((start, rate, cv, None if nearest_in is None else nearest_in[1],
                                       None if nearest_out is None else nearest_out[2]))
                client_cdfs.append((cdf_of(nearest_in, 1), cdf_of(nearest_out, 2)))
    # Clients without any token-length data get the rate-weighted mean (and mixed PDF) of those with data.
    known = [(r, i, o) for _, r, _, i, o in client_windows if i is not None and o is not None]
    weight = sum(r for r, _, _ in known) or 1.0
    default_in = sum(r * i for r, i, _ in known) / weight if known else 1000.0
    default_out = sum(r * o for r, _, o in known) / weight if known else 250.0
    default_cdfs: list[np.ndarray | None] = [None, None]
    for which in (0, 1):
        parts_cdf = [(w[1], c[which]) for w, c in zip(client_windows, client_cdfs, strict=True) if c[which] is not None]
        if parts_cdf:
            default_cdfs[which] = sum(r * c for r, c in parts_cdf) / sum(r for r, _ in parts_cdf)
    for (start, rate, cv, inp, out), cdfs in zip(client_windows, client_cdfs, strict=True):
        band = next(i for i, upper in enumerate(CV_BANDS) if cv <= upper)
        acc = windows.setdefault((start, band), [0.0, 0.0, 0.0, 0.0])
        acc[0] += rate
        # Independent renewal processes superpose with their count variances adding up: the cv^2 of
        # the sum is the rate-weighted mean of the clients' cv^2 (within a band of similar burstiness).
        acc[1] += rate * cv * cv
        acc[2] += rate * (inp if inp is not None else default_in)
        acc[3] += rate * (out if out is not None else default_out)
        mixture = mixtures.setdefault((start, band), [None, None])
        for which in (0, 1):
            cdf = cdfs[which] if cdfs[which] is not None else default_cdfs[which]
            if cdf is not None:
                mixture[which] = rate * cdf if mixture[which] is None else mixture[which] + rate * cdf

    def p95(cdf: np.ndarray | None) -> str:
        # No length PDF anywhere: left empty, so the loader applies its documented default spread.
        return "" if cdf is None else f"{_grid_quantile(cdf, 0.95):.0f}"

    ordered = sorted(starts)
    step = min((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=600.0)
    rows = []
    for start in ordered:
        bands = [(band, windows[(start, band)]) for band in range(len(CV_BANDS)) if (start, band) in windows]
        if not bands:
            rows.append([f"{start:g}", f"{step:g}", "0", f"{default_in:.1f}", f"{default_out:.1f}", "1",
                         p95(default_cdfs[0]), p95(default_cdfs[1])])
        for band, (rate, rate_cv2, rate_in, rate_out) in bands:
            mixture = mixtures[(start, band)]
            rows.append([f"{start:g}", f"{step:g}", f"{rate:.4f}", f"{rate_in / rate:.1f}",
                         f"{rate_out / rate:.1f}", f"{(rate_cv2 / rate) ** 0.5:.3f}", p95(mixture[0]), p95(mixture[1])])
    return rows
