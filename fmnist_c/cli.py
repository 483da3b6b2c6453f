"""The fmnist-c command: reproduce the study, classify images with a saved model, export
a saved model to ONNX, or print this build's configuration."""
import argparse
import sys


def _models(text):
    return [m.strip() for m in text.split(",") if m.strip()]


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
                          "mlp-improved, cnn-improved (default: the study's models: "
                          "lr,rf,mlp,mlp-onehot,cnn)")
    rep.add_argument("--seeds", type=int, default=1, help="seeds per model (mean ± std)")
    rep.add_argument("--sample", action="store_true",
                     help="use the embedded 3,000-image sample even if the full data is installed")
    rep.add_argument("--out", default="results", help="output folder (default: ./results)")
    rep.add_argument("--protocol", choices=("study", "official", "official-all"), default="study",
                     help="study: the study's 50,400/5,600/14,000 split of all 70,000 images "
                          "(default); official: the official 10,000 test images as test set, "
                          "10%% of the official 60,000 training images as validation; "
                          "official-all: all 60,000 train, no validation (for lr, "
                          "mlp-improved, cnn-improved)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
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
            print(f"{p.source}: {p.class_name} ({p.probability:.1%})")
        return 0
    from .study import DEFAULT_MODELS, reproduce
    models = args.models or list(DEFAULT_MODELS)
    try:
        reproduce(models=models, seeds=args.seeds, sample=args.sample, out=args.out,
                  verbose=0 if args.quiet else 1, protocol=args.protocol)
    except ValueError as e:
        parser.error(str(e))
    print(f"\nWrote {args.out}/results.json, results.md and confusion matrices.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
