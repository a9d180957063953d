"""Export the inference network of a trained model: exactly the base network (a DAAF checkpoint
loses its training-only branches), as a torch.export ExportedProgram (model.pt2) and ONNX
(model.onnx), each with a dynamic batch: input "images" (B, 3, H, W) float RGB 0-255 at
INPUT.SIZE_TEST, output "features"; --format torchscript adds TorchScript (model.ts, deprecated by
torch since 2.9: prefer the ExportedProgram); with --format detectron2, a detectron2 backbone's
weights as a .pth that detectron2's DetectionCheckpointer loads (checked by loading it).
export.json records how to load each file (a snippet per format), the preprocessing and the
test-time augmentation (flip, 5 crops) the evaluation uses, which the exported network does not do:
average its features over them yourself. Each file is
checked against PyTorch on a batch of another size than the export's (max abs difference <=
--tolerance, else exit 1). The export is written to a folder beside --output that then replaces it
as a whole: a killed export leaves the old folder as it was, never a mix.

    python tools/export_model.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --output exported/ MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
"""

import json
import os
import sys

from daaf.engine import (
    finite_float,
    inference_argument_parser,
    inference_config,
    load_inference_model,
    positive_int,
    run_command_line,
)
from daaf.engine.export import (
    LOAD_SNIPPETS,
    ONNX_OPSETS,
    ExportableReID,
    detectron2_max_abs_diff,
    example_images,
    export_detectron2_backbone,
    export_onnx,
    export_program,
    export_torchscript,
    onnx_max_abs_diff,
    program_max_abs_diff,
    torchscript_max_abs_diff,
)
from daaf.modeling import count_parameters
from daaf.utils.errors import UserError
from daaf.utils.file_io import replaced_folder

# format -> (file name, export(model, path, height, width, opset), check(path, model, images))
EXPORTERS = {
    "export": ("model.pt2", lambda m, p, h, w, opset: export_program(m, p, h, w), program_max_abs_diff),
    "onnx": ("model.onnx", lambda m, p, h, w, opset: export_onnx(m, p, h, w, opset=opset), onnx_max_abs_diff),
    "torchscript": ("model.ts", lambda m, p, h, w, opset: export_torchscript(m, p, h, w), torchscript_max_abs_diff),
    # the backbone alone, for detectron2's DetectionCheckpointer (MODEL.BACKBONE.NAME build_detectron2_backbone)
    "detectron2": ("backbone_detectron2.pth", lambda m, p, h, w, opset: export_detectron2_backbone(m, p), detectron2_max_abs_diff),
}
EXPORT_FILES = {name for name, _, _ in EXPORTERS.values()} | {"export.json"}


def check_arguments(args) -> None:
    """One-line UserErrors for --output and --opset, before any work."""
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UserError(f"--output {args.output}: is a file; give a folder (it is replaced by the export as a whole)")
    if os.path.isdir(args.output):
        foreign = sorted(set(os.listdir(args.output)) - EXPORT_FILES)
        if foreign:
            raise UserError(
                f"--output {args.output}: holds files an export does not write ({', '.join(foreign[:3])}); give a new folder or an earlier export's"
            )
    if "onnx" in args.format and not ONNX_OPSETS[0] <= args.opset <= ONNX_OPSETS[1]:
        raise UserError(f"--opset {args.opset}: the ONNX exporter writes opsets {ONNX_OPSETS[0]} to {ONNX_OPSETS[1]}")


def main(args):
    check_arguments(args)
    cfg = inference_config(args.config_file, args.opts)
    model = ExportableReID(load_inference_model(cfg))
    height, width = cfg.INPUT.SIZE_TEST
    check_batch = example_images(height, width, batch=3, seed=1)
    report = {
        "parameters": count_parameters(model),
        "input_size": [height, width],
        # what the caller must do around the exported network to get the evaluation's features
        "preprocessing": {
            "input": f"{cfg.INPUT.FORMAT} float 0-255, resized to {height}x{width} (INPUT.SIZE_TEST)",
            "normalisation": "inside the network (MODEL.PIXEL_MEAN / MODEL.PIXEL_STD)",
            "pixel_mean": list(cfg.MODEL.PIXEL_MEAN),
            "pixel_std": list(cfg.MODEL.PIXEL_STD),
        },
        "test_time_augmentation": {
            "flip": cfg.TEST.FLIP.ENABLED,
            "five_crop": cfg.TEST.FIVE_CROP,
            "note": "not in the exported network: average its features over the flipped image (and the 5 crops) "
            "yourself to match tools/extract_features.py and the evaluation",
        },
        "metric": cfg.TEST.METRIC,
        "files": {},
    }
    print(f"Base network: {report['parameters']:,} parameters, input (B, 3, {height}, {width})")
    tta = [name for name, on in (("flip", cfg.TEST.FLIP.ENABLED), ("5-crop", cfg.TEST.FIVE_CROP)) if on]
    if tta:
        print(
            f"Note: the evaluation averages features over {' and '.join(tta)} test-time augmentation; the exported "
            "network computes one image's features (see export.json)"
        )
    failed = []
    with replaced_folder(args.output) as folder:  # a killed export leaves the old folder as it was
        for fmt in args.format:
            name, export, difference = EXPORTERS[fmt]
            written = os.path.join(folder, name)
            export(model, written, height, width, args.opset)
            entry = {"path": os.path.join(args.output, name)}
            if fmt in LOAD_SNIPPETS:
                entry["load"] = [line.format(path=entry["path"]) for line in LOAD_SNIPPETS[fmt]]
            if not args.no_check:
                entry["max_abs_diff"] = difference(written, model, check_batch)
                ok = entry["max_abs_diff"] <= args.tolerance
                print(
                    f"{fmt:<12} {entry['path']}: max |exported - PyTorch| = {entry['max_abs_diff']:.2e} on a batch of 3 "
                    f"({'ok' if ok else 'FAILED'}, tolerance {args.tolerance:g})"
                )
                if not ok:
                    failed.append(fmt)
            else:
                print(f"{fmt:<12} {entry['path']} (not checked)")
            report["files"][fmt] = entry
        with open(os.path.join(folder, "export.json"), "w") as f:
            json.dump(report, f, indent=2)
    if failed:
        print(f"error: the exported {', '.join(failed)} model differs from PyTorch beyond --tolerance", file=sys.stderr)
        return 1
    return 0


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--output", default="exported", help="folder for model.pt2, model.onnx (model.ts) and export.json")
    p.add_argument(
        "--format",
        nargs="+",
        choices=sorted(EXPORTERS),
        default=["export", "onnx"],
        help="export: torch.export ExportedProgram; onnx; torchscript (deprecated by torch); detectron2: the backbone",
    )
    p.add_argument("--opset", type=positive_int, default=17)
    p.add_argument("--tolerance", type=finite_float, default=1e-4)
    p.add_argument("--no-check", action="store_true", help="skip the check against PyTorch")
    return p


def cli() -> int:
    """The command line (``daaf-export``, ``python -m daaf.tools.export_model``, ``python tools/export_model.py``); the exit code."""
    return run_command_line(main, parser)


if __name__ == "__main__":
    sys.exit(cli())
