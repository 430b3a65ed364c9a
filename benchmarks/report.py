"""Markdown tables from a results JSON, written between markers in docs/benchmarks.md.

``python benchmarks/report.py benchmarks/results/<date>.json`` re-renders a past run.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- results:begin (written by benchmarks/run.py) -->"
END = "<!-- results:end -->"


def med(values: list[float]) -> float:
    return statistics.median(values)


def cell(values: list[float] | None, digits: int = 0) -> str:
    """``median (min–max)``, or ``–`` when not measured."""
    if not values:
        return "–"
    fmt = f"{{:,.{digits}f}}"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _variants(samples: dict[str, list[float]], prefix: str) -> dict[str, list[float]]:
    return {k.split("|", 1)[1]: v for k, v in samples.items() if k.startswith(prefix + "|")}


def best_drain(samples: dict[str, list[float]], results: bool = False) -> tuple[str, float]:
    """The variant with the highest median drain rate (results off unless asked)."""
    rates = {
        v: med(x)
        for v, x in _variants(samples, "drain_rate").items()
        if ("+results" in v) == results
    }
    name = max(rates, key=lambda v: rates[v])
    return name, rates[name]


def publish_samples(samples: dict[str, list[float]]) -> list[float]:
    return [x for v, xs in _variants(samples, "publish_rate").items() for x in xs]


def main_table(record: dict[str, Any]) -> list[str]:
    samples = record["results"]["samples"]
    lines = [
        "| library | worker (concurrency 2) | drain tasks/s | RSS after drain MB | idle RSS MB |",
        "|---|---|---|---|---|",
    ]
    for peer, s in samples.items():
        for variant, rates in _variants(s, "drain_rate").items():
            lines.append(
                f"| {peer} | {variant} | {cell(rates)} | "
                f"{cell(s.get('rss_after_mb|' + variant), 0)} | "
                f"{cell(s.get('idle_rss_mb|' + variant), 0)} |"
            )
    return lines


def client_table(record: dict[str, Any]) -> list[str]:
    samples = record["results"]["samples"]
    tq = samples.get("tq", {})
    tq_pub = med(publish_samples(tq)) if tq else 0.0
    tq_best = best_drain(tq)[1] if tq else 0.0
    lines = [
        "| library | publish tasks/s (one call each) | best drain tasks/s (pool) "
        "| RTT p50 / p99 ms | tq publish ÷ | tq best drain ÷ |",
        "|---|---|---|---|---|---|",
    ]
    for peer, s in samples.items():
        pool, rate = best_drain(s)
        pub = publish_samples(s)
        lines.append(
            f"| {peer} | {cell(pub)} | {rate:,.0f} ({pool}) | "
            f"{cell(s.get('rtt_p50_ms'), 2)} / {cell(s.get('rtt_p99_ms'), 2)} | "
            f"{tq_pub / med(pub):.2f}× | {tq_best / rate:.2f}× |"
        )
    return lines


def tq_table(record: dict[str, Any]) -> list[str]:
    s = record["results"]["samples"].get("tq", {})
    rows = [
        ("bulk publish (`Transport.publish_many`, 1,000 per pipeline), tasks/s",
         s.get("bulk_publish_rate")),
        *((f"drain, threads ×2, {int(k):,} queued, tasks/s", v)
          for k, v in sorted(_variants(s, "scale_rate").items(), key=lambda kv: int(kv[0]))),
        ("RSS growth of an idle worker with 100k ETA tasks an hour ahead, MB", s.get("eta_rss")),
        ("SQLite broker: publish tasks/s", s.get("sqlite_publish_rate")),
        ("SQLite broker: drain, threads ×2, tasks/s", s.get("sqlite_drain_rate")),
        ("memory transport, in-process: publish tasks/s", s.get("memory_publish_rate")),
        ("memory transport, in-process worker (threads ×2): drain tasks/s",
         s.get("memory_drain_rate")),
    ]  # fmt: skip
    lines = ["| tq scenario | median (min–max) |", "|---|---|"]
    for label, values in rows:
        lines.append(f"| {label} | {cell(values, 1 if 'MB' in label else 0)} |")
    return lines


def goals(record: dict[str, Any]) -> list[str]:
    samples = record["results"]["samples"]
    tq = samples["tq"]
    peers = {p: s for p, s in samples.items() if p != "tq"}
    tq_drain = best_drain(tq)[1]
    tq_pub = med(publish_samples(tq))
    out: list[tuple[str, str, bool]] = []
    if "celery" in peers:
        celery_drain = best_drain(peers["celery"])
        out.append(
            (
                "drain ≥ 3× Celery's best pool",
                f"{tq_drain:,.0f} vs {celery_drain[1]:,.0f} ({celery_drain[0]}): "
                f"{tq_drain / celery_drain[1]:.2f}×",
                tq_drain >= 3 * celery_drain[1],
            )
        )
        celery_pub = med(publish_samples(peers["celery"]))
        out.append(
            (
                "publish, one task per call, ≥ 3× Celery",
                f"{tq_pub:,.0f} vs {celery_pub:,.0f}: {tq_pub / celery_pub:.2f}×",
                tq_pub >= 3 * celery_pub,
            )
        )
        celery_rss = min(med(v) for v in _variants(peers["celery"], "idle_rss_mb").values())
        tq_rss = min(med(v) for v in _variants(tq, "idle_rss_mb").values())
        out.append(
            (
                "idle worker RSS ≤ Celery's (lightest pool each)",
                f"{tq_rss:.0f} MB vs {celery_rss:.0f} MB",
                tq_rss <= celery_rss,
            )
        )
    if peers:
        fastest = max(peers, key=lambda p: best_drain(peers[p])[1])
        rate = best_drain(peers[fastest])
        out.append(
            (
                "drain ≥ 1.5× the fastest peer",
                f"{tq_drain:,.0f} vs {fastest} {rate[0]} {rate[1]:,.0f}: {tq_drain / rate[1]:.2f}×",
                tq_drain >= 1.5 * rate[1],
            )
        )
        fastest_pub = max(peers, key=lambda p: med(publish_samples(peers[p])))
        pub = med(publish_samples(peers[fastest_pub]))
        bulk = med(tq["bulk_publish_rate"])
        out.append(
            (
                "bulk publish ≥ fastest peer's per-call publish",
                f"{bulk:,.0f} vs {fastest_pub} {pub:,.0f}",
                bulk >= pub,
            )
        )
    p50 = med(tq["rtt_p50_ms"])
    out.append(("RTT p50 under 1 ms", f"{p50:.2f} ms", p50 < 1.0))
    scale = {int(k): med(v) for k, v in _variants(tq, "scale_rate").items()}
    if scale:
        spread = (max(scale.values()) - min(scale.values())) / max(scale.values())
        out.append(
            (
                f"drain within 10% from 1k to {max(scale) // 1000}k queued",
                ", ".join(f"{k // 1000}k: {v:,.0f}" for k, v in sorted(scale.items()))
                + f" (spread {100 * spread:.0f}%)",
                spread <= 0.10,
            )
        )
    if "eta_rss" in tq:
        growth = med(tq["eta_rss"])
        out.append(("100k scheduled ETA tasks add < 20 MB", f"{growth:+.1f} MB", growth < 20))
    lines = ["| goal | measured | |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {'met' if ok else '**not met**'} |" for g, m, ok in out]
    return lines


def profile_section(record: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, data in record["results"].get("profile", {}).items():
        lines.append(f"**{name}** ({data['samples']:,} non-idle samples at 500 Hz)")
        lines.append("")
        lines.append("| function (self) | % | function (inclusive) | % |")
        lines.append("|---|---|---|---|")
        for (own, op), (inc, ip) in zip(data["self"][:12], data["inclusive"][:12], strict=False):
            lines.append(f"| `{own}` | {op:.1f} | `{inc}` | {ip:.1f} |")
        lines.append("")
    return lines


def render(record: dict[str, Any]) -> str:
    m = record["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(record["versions"].items()))
    args = record["args"]
    parts = [
        BEGIN,
        "",
        f"Run {record['date']}, {record['minutes']:.0f} min: `{record['command']}`  ",
        f"{m['cpu']}, {m['memory']}, Linux {m['kernel']}, Python {m['python']}, "
        f"Redis {record['redis']}; {versions}.  ",
        f"Load before: `{record['uptime_before']}`; after: `{record['uptime_after']}`.  ",
        f"{args['reps']} interleaved repetitions, {args['tasks']:,} tasks per drain "
        "(rq: 3,000); cells are median (min–max).",
        "",
        "### Publish, drain, round trip",
        "",
        *client_table(record),
        "",
        "### Every worker configuration",
        "",
        *main_table(record),
        "",
        "### tq only: bulk publish, scale, ETA, embedded brokers",
        "",
        *tq_table(record),
        "",
        "### Goals of issue 7",
        "",
        *goals(record),
        "",
        "### Profile of tq (py-spy)",
        "",
        *profile_section(record),
        END,
    ]
    return "\n".join(parts)


def update_doc(record: dict[str, Any], doc: Path) -> None:
    text = doc.read_text()
    block = render(record)
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    update_doc(json.loads(Path(sys.argv[1]).read_text()), root / "docs" / "benchmarks.md")
