"""Cold-start distributions: how long a new replica takes from creation to Ready.

Specs: "30s", "30", "2m", "fixed:45", or "lognormal:p50=22.7,p99=51.9" (optionally ",max=80"), or
measured durations (`ColdStart.empirical`, what `--cold-start empirical:FILE` reads: real load times are
bimodal, which no lognormal expresses). The file is read at the CLI boundary; this module stays pure.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace

# z-score of the 99th percentile of a standard normal: lognormal sigma = ln(p99/p50) / Z99.
Z99 = 2.3263478740408408

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r} (expected e.g. 30s, 2m, 45)")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(value):
        raise ValueError(f"bad duration {text!r} (too large)")
    return value


@dataclass(frozen=True)
class ColdStart:
    """Fixed (sigma 0), lognormal (optionally capped at `max_s`) or empirical start→Ready time."""

    p50_s: float
    sigma: float = 0.0
    max_s: float | None = None
    spec: str = ""
    samples_s: tuple[float, ...] = ()  # empirical: sorted measured durations, drawn with equal weight

    @classmethod
    def empirical(cls, values_s: list[float] | tuple[float, ...], spec: str = "empirical") -> ColdStart:
        """Draws from these measured durations; raises ValueError unless they are finite and >= 0."""
        values = tuple(sorted(float(v) for v in values_s))
        if not values:
            raise ValueError(f"bad cold start {spec!r}: no durations")
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"bad cold start {spec!r}: durations must be finite and >= 0")
        cold = cls(p50_s=0.0, spec=spec, samples_s=values)
        return replace(cold, p50_s=cold.quantile_s(0.5))

    @property
    def p99_s(self) -> float:
        return self.quantile_s(0.99)

    @property
    def min_s(self) -> float:
        """The shortest start the distribution allows (a lognormal's is 0)."""
        if self.samples_s:
            return self.samples_s[0]
        return self.p50_s if self.sigma == 0.0 else 0.0

    @property
    def mean_s(self) -> float:
        if self.samples_s:
            return math.fsum(self.samples_s) / len(self.samples_s)
        return self.p50_s * math.exp(self.sigma**2 / 2.0)

    def quantile_s(self, q: float) -> float:
        if self.samples_s:
            # Linear interpolation between order statistics (numpy's default quantile).
            position = min(max(q, 0.0), 1.0) * (len(self.samples_s) - 1)
            low = math.floor(position)
            high = min(low + 1, len(self.samples_s) - 1)
            return self.samples_s[low] + (self.samples_s[high] - self.samples_s[low]) * (position - low)
        if self.sigma == 0.0:
            return self.p50_s
        from statistics import NormalDist

        value = self.p50_s * math.exp(self.sigma * NormalDist().inv_cdf(q))
        return min(value, self.max_s) if self.max_s is not None else value

    def sample_s(self, rng: random.Random) -> float:
        if self.samples_s:
            return self.samples_s[rng.randrange(len(self.samples_s))]
        if self.sigma == 0.0:
            return self.p50_s
        value = self.p50_s * math.exp(rng.gauss(0.0, self.sigma))
        return min(value, self.max_s) if self.max_s is not None else value


def parse_cold_start(spec: str) -> ColdStart:
    """Parse a cold-start spec; raises ValueError with a one-line message on bad input."""
    text = spec.strip()
    if text.startswith("empirical:"):
        raise ValueError(f"cold start {spec!r}: empirical durations come from a file, which the CLI reads "
                         "(ColdStart.empirical takes the values)")
    if text.startswith("lognormal:"):
        params: dict[str, float] = {}
        for part in text[len("lognormal:") :].split(","):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in ("p50", "p99", "max"):
                raise ValueError(f"bad cold start {spec!r} (expected lognormal:p50=22.7,p99=51.9)")
            params[key.strip()] = parse_duration_s(value)
        if "p50" not in params or "p99" not in params:
            raise ValueError(f"bad cold start {spec!r}: lognormal needs p50 and p99")
        if not 0 < params["p50"] <= params["p99"]:
            raise ValueError(f"bad cold start {spec!r}: need 0 < p50 <= p99")
        sigma = math.log(params["p99"] / params["p50"]) / Z99
        return ColdStart(p50_s=params["p50"], sigma=sigma, max_s=params.get("max"), spec=text)
    if text.startswith("fixed:"):
        text = text[len("fixed:") :]
    value = parse_duration_s(text)
    if value < 0:
        raise ValueError(f"bad cold start {spec!r}: must be >= 0")
    return ColdStart(p50_s=value, spec=spec.strip())
