"""`fmnist-c report`: the study's question answered from the results ledger. Per test set
(the study split's 14,000 images; the official 10,000), a table of every model (accuracy
over seeds with its 95% interval, macro F1, fit time, prediction time, size) and its
accuracy-vs-cost frontier: test accuracy against fit seconds and against microseconds per
image, log x, every seed a dot, the Pareto frontier drawn, the study's own figures marked.
Writes results.md, frontier_<test set>.png and results.html (the PNGs inside it).

It reads only the ledger and the registry's titles: a family that adds a model to
fmnist_c.study.MODELS and runs `fmnist-c reproduce --models KEY` appears here unchanged."""
import base64
import html
import os

import numpy as np

from . import ledger

# the test sets the report draws, and the protocols whose rows test on each
TEST_SETS = {
    "study": ("study split: 14,000 test images (trained on 50,400, 5,600 for validation)",
              ("study",)),
    "official": ("official split: the official 10,000 test images (trained on 54,000 with "
                 "6,000 for validation, or on all 60,000)", ("official", "official-all")),
}
# on a 2-core machine, a fit's own two threads make a load of about 2: above this, other
# processes took a share of the cores and the fit seconds overstate the cost
BUSY_LOAD = 2.5


def summarize(rows):
    """One dict per (protocol, model) of `rows` (the newest row of each run), in the
    registry's order: seeds, mean and std of test accuracy, seed 0's 95% interval, mean
    macro F1, median fit seconds and predict µs per image, model bytes, the highest load."""
    from .study import DEFAULT_MODELS, MODELS, study_results
    study = study_results()
    groups = {}
    for r in ledger.latest(rows):
        groups.setdefault((r["protocol"], r["model"]), []).append(r)
    order = {k: i for i, k in enumerate(MODELS)}
    out = []
    for (protocol, key), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], order.get(kv[0][1], len(order)), kv[0][1])):
        rs = sorted(rs, key=lambda r: r["seed"])
        acc = np.array([r["test_accuracy"] for r in rs])
        spec = MODELS.get(key)
        loads = [x for r in rs for x in r["load_avg_1min"] if x is not None]
        out.append({
            "protocol": protocol, "model": key, "title": spec.title if spec else key,
            "seeds": [r["seed"] for r in rs], "accuracies": acc.tolist(),
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
            "test_ci95_first_seed": rs[0]["test_ci95"],
            "macro_f1_mean": float(np.mean([r["macro_f1"] for r in rs])),
            "fit_seconds": [r["fit_seconds"] for r in rs],
            "fit_seconds_median": float(np.median([r["fit_seconds"] for r in rs])),
            "predict_us": [r["predict_us_per_image"] for r in rs],
            "predict_us_median": float(np.median([r["predict_us_per_image"] for r in rs])),
            "model_bytes": int(np.median([r["model_bytes"] for r in rs])),
            "max_load": max(loads) if loads else None,
            "threads": sorted({r["threads"] for r in rs}),
            # the study's own models, on its own split: its published figure
            "study_accuracy": (study[spec.study_key]["published_test_accuracy"]
                               if key in DEFAULT_MODELS and protocol == "study" else None),
        })
    return out


def summary_index(ledger_path=ledger.DEFAULT_PATH, data="full"):
    """{(protocol, model): summary} of the ledger's rows made on `data` (see summarize)."""
    rows = ledger.select(ledger.read(ledger_path), data=data)
    return {(s["protocol"], s["model"]): s for s in summarize(rows)}


def accuracy_text(s):
    """"0.8551 ± 0.0002 (5 seeds)", or "0.8552 (seed 0)" for one seed."""
    if s["test_accuracy_std"] is None:
        return f"{s['test_accuracy_mean']:.4f} (seed {s['seeds'][0]})"
    return f"{s['test_accuracy_mean']:.4f} ± {s['test_accuracy_std']:.4f} ({len(s['seeds'])} seeds)"


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _fit_text(s):
    busy = s["max_load"] is not None and s["max_load"] > BUSY_LOAD
    return f"{s['fit_seconds_median']:.1f}" + (f" (busy: load {s['max_load']:.1f})" if busy else "")


def table(summaries):
    """Markdown table of summaries (one test set's)."""
    lines = ["| model | protocol | test accuracy | 95% CI (first seed) | macro F1 | fit s (median) "
             "| µs / image | size | the study |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lo, hi = s["test_ci95_first_seed"]
        study = f"{s['study_accuracy']:.4f}" if s["study_accuracy"] is not None else "—"
        lines.append(f"| {s['title']} | {s['protocol']} | {accuracy_text(s)} | {lo:.4f}–{hi:.4f} | "
                     f"{s['macro_f1_mean']:.4f} | {_fit_text(s)} | {s['predict_us_median']:.1f} | "
                     f"{_size(s['model_bytes'])} | {study} |")
    return "\n".join(lines) + "\n"


def pareto(points):
    """Indices of the (cost, accuracy) points no other point beats: none costs as little
    or less with as high an accuracy or higher (and better in one). Sorted by cost."""
    keep = [i for i, (c, a) in enumerate(points)
            if not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in points)]
    return sorted(keep, key=lambda i: points[i][0])


def plot_frontier(summaries, title, path):
    """Two panels: test accuracy against fit seconds and against µs per image (log x),
    each seed a dot, the mean a labelled marker with the seeds' std as error bar, the
    Pareto frontier of the means as a step line, the study's published figures (drawn at
    our model's cost: the study published no times) as stars."""
    from matplotlib.ticker import FuncFormatter

    from .study import _pyplot
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), layout="constrained")
    for ax, (field, median, xlabel) in zip(axes, (
            ("fit_seconds", "fit_seconds_median", "fit time, s (2 cores, log scale)"),
            ("predict_us", "predict_us_median", "prediction, µs per image (batch of the test "
                                                "set, log scale)"))):
        points = [(s[median], s["test_accuracy_mean"]) for s in summaries]
        for i, s in enumerate(summaries):
            color = f"C{i % 10}"
            hollow = s["protocol"] == "official-all"
            ax.scatter(s[field], s["accuracies"], s=12, color=color, alpha=0.45)
            ax.errorbar(s[median], s["test_accuracy_mean"], yerr=s["test_accuracy_std"] or 0,
                        fmt="o", ms=8, capsize=3, color=color,
                        mfc="white" if hollow else color,
                        label=s["title"] + (" (all 60,000)" if hollow else "")
                        + f", {len(s['seeds'])} seed{'s' * (len(s['seeds']) > 1)}")
            if s["study_accuracy"] is not None:
                ax.scatter(s[median], s["study_accuracy"], marker="*", s=140, color=color,
                           edgecolor="k", linewidth=0.6, zorder=3)
        front = pareto(points)
        xs = [points[i][0] for i in front]
        ys = [points[i][1] for i in front]
        if len(front) > 1:
            ax.step(xs, ys, where="post", color="k", alpha=0.5, lw=1.2, label="Pareto frontier")
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3, which="both")
    if any(s["study_accuracy"] is not None for s in summaries):
        axes[0].scatter([], [], marker="*", s=140, color="w", edgecolor="k",
                        label="the study's published accuracy (at our cost)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3,
               fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(ledger_path=ledger.DEFAULT_PATH, out="results", data="full", log=print):
    """Render the ledger's rows made on `data` ("full" or "sample") into `out`:
    results.md, frontier_<test set>.png per test set with rows, results.html. Returns the
    paths written."""
    rows = ledger.select(ledger.read(ledger_path), data=data)
    if not rows:
        raise ValueError(f"{ledger_path} has no rows made on the {data} data")
    os.makedirs(out, exist_ok=True)
    summaries = summarize(rows)
    md = [f"# Results from {ledger_path}\n",
          f"{len(rows)} rows ({data} data). Accuracy: mean ± standard deviation over the "
          "seeds run; the 95% interval (Wilson) is the first seed's. Fit seconds are the "
          "median over seeds on a 2-core machine; \"busy\" marks a fit during which the "
          f"1-minute load average passed {BUSY_LOAD} (other processes shared the cores). "
          "µs / image: predicting the whole test set in one call. Size: the fitted "
          "model's arrays.\n"]
    html_parts, written = [], []
    for name, (description, protocols) in TEST_SETS.items():
        chosen = [s for s in summaries if s["protocol"] in protocols]
        if not chosen:
            continue
        png = os.path.join(out, f"frontier_{name}.png")
        plot_frontier(chosen, f"accuracy against cost: {description}", png)
        written.append(png)
        md += [f"## {description}\n", table(chosen),
               f"\n![accuracy against cost]({os.path.basename(png)})\n"]
        with open(png, "rb") as f:
            image = base64.b64encode(f.read()).decode()
        html_parts.append(f"<h2>{html.escape(description)}</h2>\n{_html_table(chosen)}\n"
                          f'<img alt="accuracy against fit time and prediction time, '
                          f'{html.escape(name)}" src="data:image/png;base64,{image}">')
    md_path = os.path.join(out, "results.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    html_path = os.path.join(out, "results.html")
    with open(html_path, "w") as f:
        f.write(_HTML.format(title=html.escape(f"fmnist_c results ({data} data)"),
                             intro=html.escape(md[1]), body="\n".join(html_parts)))
    written += [md_path, html_path]
    log("Wrote " + ", ".join(written))
    return written


def _html_table(summaries):
    head = ["model", "protocol", "test accuracy", "95% CI (first seed)", "macro F1",
            "fit s (median)", "µs / image", "size", "the study"]
    rows = []
    for s in summaries:
        lo, hi = s["test_ci95_first_seed"]
        cells = [s["title"], s["protocol"], accuracy_text(s), f"{lo:.4f}–{hi:.4f}",
                 f"{s['macro_f1_mean']:.4f}", _fit_text(s), f"{s['predict_us_median']:.1f}",
                 _size(s["model_bytes"]),
                 f"{s['study_accuracy']:.4f}" if s["study_accuracy"] is not None else "—"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>\n"
            + "\n".join(rows) + "</table>")


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }}
td:first-child, th:first-child, td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head>
<body><h1>{title}</h1>
<p>{intro}</p>
{body}
</body></html>
"""
