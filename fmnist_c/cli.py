"""The fmnist-c command: reproduce the study (each fit a row of the results ledger),
re-run the ledger's rows to check them, classify images with a saved model, export a
saved model to ONNX, or print this build's configuration."""
import argparse
import os
import shlex
import sys


def _models(text):
    return [m.strip() for m in text.split(",") if m.strip()]


def _seeds(text):
    """"5": seeds 0..4; "1-4": seeds 1, 2, 3, 4; "0,3": seeds 0 and 3."""
    try:
        if text.isdigit():
            if int(text) < 1:
                raise ValueError
            return int(text)
        seeds = []
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds += range(int(lo), int(hi or lo) + 1)
        return seeds
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (5), a range (1-4) or seeds separated by commas (0,3), got {text!r}"
        ) from None


def _shape(text):
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ints separated by commas, got {text!r}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fmnist-c", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="train the study's models on the study's split and "
                                           "compare with the study's figures")
    rep.add_argument("--models", type=_models, default=None,
                     help="comma-separated models: lr, rf, mlp, mlp-onehot, cnn, "
                          "mlp-improved, cnn-improved, cnn-best, knn, svm, svm-grid, gbdt, hog-svm "
                          "(default: the study's models: "
                          "lr,rf,mlp,mlp-onehot,cnn)")
    rep.add_argument("--seeds", type=_seeds, default=1,
                     help="seeds per model (mean ± std): a count (5: seeds 0-4), a range (1-4) "
                          "or a list (0,3)")
    rep.add_argument("--sample", action="store_true",
                     help="use the embedded 3,000-image sample even if the full data is installed")
    rep.add_argument("--out", default="results", help="output folder (default: ./results)")
    rep.add_argument("--protocol", choices=("study", "official", "official-all", "both"),
                     default="study",
                     help="study: the study's 50,400/5,600/14,000 split of all 70,000 images "
                          "(default); official: the official 10,000 test images as test set, "
                          "10%% of the official 60,000 training images as validation; "
                          "official-all: all 60,000 train, no validation (for the models that "
                          "choose nothing on one); both: study, then the official test set "
                          "(official for the models that choose on validation, official-all "
                          "for the others; each protocol in a subfolder of --out)")
    rep.add_argument("--ledger", default=None,
                     help="the results ledger each fit is appended to (default: "
                          "OUT/ledger.jsonl, so results/ledger.jsonl: the repository's)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
    rep.add_argument("--jobs", type=int, default=1,
                     help="fit in N local processes at once (default 1: one after another)")
    rep.add_argument("--dask", default=os.environ.get("FMNIST_C_DASK"), metavar="ADDRESS",
                     help="fit on the dask.distributed scheduler at ADDRESS (tcp://host:8786; "
                          "default: $FMNIST_C_DASK); needs pip install 'fmnist_c[dask]'")
    rep.add_argument("--threads", type=int, default=None,
                     help="OpenMP threads per fit (default: 1 on Dask, so a worker with k "
                          "threads runs k fits; the cores shared among --jobs locally)")
    rep.add_argument("--resume", action="store_true",
                     help="skip the fits the ledger holds a row of made by this same code "
                          "(git commit) on the same data: finish an interrupted sweep")
    pred = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model",
                          description="Each image is turned into a 28x28 Fashion-MNIST image "
                                      "(grayscale, background trimmed, longest side fitted "
                                      "into 28 and centred, negated when the background is "
                                      "light; see fmnist_c.prepare_image) and classified.")
    pred.add_argument("model", help="a model file saved by fmnist_c (.npz) or exported to "
                                    "ONNX (.onnx, run by onnxruntime)")
    pred.add_argument("images", nargs="+", metavar="IMAGE", help="image files, any size or colour")
    pred.add_argument("--pixel-scale", type=float, default=255.0,
                      help="the model sees pixels / this (default 255; 1 for raw-pixel models)")
    exp = sub.add_parser("export", help="write a saved model as ONNX (needs the onnx package)",
                         description="The graph takes float32 (n, 784) (or --input-shape) and "
                                     "gives output_label and output_probability; it is "
                                     "checked by onnx.checker before it is written.")
    exp.add_argument("model", help="a model file saved by fmnist_c (.npz)")
    exp.add_argument("onnx", help="the .onnx file to write")
    exp.add_argument("--input-shape", type=_shape, default=None,
                     help="one sample's shape in the graph's input, e.g. 28,28 (default: "
                          "the model's feature count, 784)")
    ver = sub.add_parser("verify", help="re-run the ledger's rows: each identical or differs",
                         description="Training is bit-deterministic: a row made on this CPU's "
                                     "SIMD kernels must come out with the same prediction for "
                                     "every test image. Exit status 1 if one does not.")
    ver.add_argument("--ledger", default="results/ledger.jsonl",
                     help="the ledger (default: results/ledger.jsonl)")
    ver.add_argument("--models", type=_models, default=None,
                     help="comma-separated models (default: the cheap ones, lr,rf,rf100,mlp,"
                          "mlp-onehot,cnn; with --all every model)")
    ver.add_argument("--protocol", choices=("study", "official", "official-all"), default=None, help="only this protocol's rows (default: study; with "
                                        "--all every protocol)")
    ver.add_argument("--seeds", type=_seeds, default=None,
                     help="only these seeds (default: 0; with --all every seed)")
    ver.add_argument("--all", action="store_true",
                     help="every row (the newest of each model, protocol, seed), not only "
                          "the cheap rows' seed 0")
    ver.add_argument("--sample", action="store_true",
                     help="the rows made on the embedded sample (default: full-data rows)")
    rpt = sub.add_parser("report", help="the ledger as tables and accuracy-vs-cost frontiers",
                         description="Per test set: every model's accuracy over seeds (95%% "
                                     "CI, macro F1, fit time, µs per image, size) and "
                                     "accuracy against fit time and prediction time (log x, "
                                     "Pareto frontier, the study's figures marked). Writes "
                                     "results.md, frontier_*.png and a self-contained "
                                     "results.html.")
    rpt.add_argument("--ledger", default="results/ledger.jsonl",
                     help="the ledger (default: results/ledger.jsonl)")
    rpt.add_argument("--out", default="results", help="output folder (default: ./results)")
    rpt.add_argument("--sample", action="store_true",
                     help="the rows made on the embedded sample (default: full-data rows)")
    sub.add_parser("info", help="SIMD level, OpenMP threads, NumPy version, where the data is")
    args = parser.parse_args(argv)

    if args.command == "info":
        from ._config import show_config
        show_config()
        return 0
    if args.command == "export":
        from .nn import load_model
        from .onnx_export import to_onnx
        try:
            to_onnx(load_model(args.model), args.onnx, input_shape=args.input_shape)
        except (ValueError, ImportError) as e:
            parser.error(str(e))
        print(f"Wrote {args.onnx}")
        return 0
    if args.command == "predict":
        from .deploy import predict_images
        try:
            found = predict_images(args.model, args.images, pixel_scale=args.pixel_scale)
        except (ValueError, ImportError) as e:
            parser.error(str(e))
        for p in found:
            print(f"{p.source}: {p.class_name} (" + ("the model gives no probabilities)"
                  if p.probability is None else f"{p.probability:.1%})"))
        return 0
    if args.command == "verify":
        return _verify(parser, args)
    if args.command == "report":
        from .report import write_report
        try:
            write_report(args.ledger, args.out, data="sample" if args.sample else "full")
        except ValueError as e:
            parser.error(str(e))
        return 0
    from .study import DEFAULT_MODELS, reproduce
    models = args.models or list(DEFAULT_MODELS)
    ledger_path = args.ledger or args.out + "/ledger.jsonl"
    try:
        reproduce(models=models, seeds=args.seeds, sample=args.sample, out=args.out,
                  verbose=0 if args.quiet else 1, protocol=args.protocol,
                  ledger_path=ledger_path, jobs=args.jobs, dask=args.dask or None,
                  threads=args.threads, resume=args.resume,
                  command=shlex.join(["fmnist-c"] + list(sys.argv[1:] if argv is None else argv)))
    except (ValueError, ImportError, ConnectionError) as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        print(f"\nInterrupted: the fits that ended are in {ledger_path}; the same command with "
              "--resume runs the rest.", file=sys.stderr)
        return 130
    print(f"\nWrote {args.out}/results.json, confusion matrices and the report; appended "
          f"each fit to {ledger_path}.")
    return 0


def _verify(parser, args):
    import time

    from .study import seed_list, verify
    t0 = time.perf_counter()
    try:
        found = verify(args.ledger, models=args.models,
                       protocols=[args.protocol] if args.protocol else None,
                       seeds=None if args.seeds is None else seed_list(args.seeds),
                       all_rows=args.all, sample=args.sample)
    except ValueError as e:
        parser.error(str(e))
    if not found:
        print(f"no rows of {args.ledger} matched", file=sys.stderr)
        return 1
    counts = {s: sum(status == s for *_, status in found)
              for s in ("identical", "differs", "differs-other-kernels")}
    print(f"{len(found)} rows re-run in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 1 if counts["differs"] else 0


if __name__ == "__main__":
    sys.exit(main())
