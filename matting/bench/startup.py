"""Start-up wall, per-image ms, peak memory and precision of `matting predict` from a checkpoint and from its graph.

    python tools/benchmark.py startup --ckpt CKPT [--reference configs/nets/modnet_sized.yaml]
                                      [--photo PHOTO] [--sizes 512 1024] [--rounds 3] [--repeats 10]
                                      [--calibration 16] [--sad-photos DIR]

Everything is measured in one run, interleaved, so that ratios hold on a busy machine (absolute
figures do not; the report gives the load average next to them):

- **start-up**: wall seconds and peak resident memory of ``python -m matting predict --ckpt X PHOTO``
  as a fresh process (imports, loading, one photo, cutout written), for the checkpoint and for its
  exported graph, and the same for the reference network (``--reference``, random weights, the
  MODNet-sized config), ``--rounds`` times round-robin; the median is reported.
- **per image**: ms of one full-size square photo (``--sizes``; the base pass at that size) through
  the old frozen TorchScript path (``prepare_for_inference(jit=True)``), today's checkpoint path
  (BatchNorm folded, channels_last, eager), bf16 autocast on it, the fp32 graph and the int8 graph
  under onnxruntime, interleaved in one process, median of ``--repeats``; with the max |Δα|
  against the eager float32 network.
- **int8**: onnxruntime static quantization (QDQ, per-channel, convolutions only) calibrated on
  ``--calibration`` images of the embedded synthetic generator's training split.
- **SAD**: whole-image SAD of fp32, bf16 and int8 against ground truth on the photos of
  ``--sad-photos`` (``image/`` and ``alpha/`` matched by stem), when the folder exists.

Prints JSON (one object) on stdout and a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from matting.bench.measure import interleaved_ms, timed

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "alphamatting"


def _run_predict(model: Path, photo: Path, out: Path) -> tuple[float, float]:
    """(wall s, peak RSS MB) of one `matting predict` process (peak from GNU time: a child's own
    ru_maxrss counts the parent's memory that it was forked with)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    wall, done = timed(lambda: subprocess.run(
        ["/usr/bin/time", "-f", "PEAK_KB %M", sys.executable, "-m", "matting", "predict", "--ckpt", str(model), str(photo),
         "--out", str(out), "--no-progress", "--overwrite"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True))
    if done.returncode:
        raise SystemExit(f"matting predict --ckpt {model} failed:\n{done.stderr[-2000:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB ")][-1]
    return wall, int(peak.split()[1]) / 1024


def _quantize(graph: Path, target: Path, count: int, size: int) -> None:
    """int8 static quantization of ``graph``, calibrated on synthetic training images at ``size``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from matting.data.synthetic.dataset import SyntheticMattingDataset

    data = SyntheticMattingDataset("train", length=count, size=size, seed=0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(range(count))

        def get_next(self):
            i = next(self.items, None)
            return None if i is None else {"image": data.arrays(i)["image"].transpose(2, 0, 1)[None].astype(np.float32)}

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    prepared.unlink()


def _median_ms(runs: dict, repeats: int) -> dict:
    times = interleaved_ms(runs, repeats, warmup=2)  # two warm-up rounds (and TorchScript's trace)
    return {name: float(np.median(t)) for name, t in times.items()}


def per_image(ckpt: Path, graphs: dict, size: int, repeats: int, photo: np.ndarray) -> dict:
    import torch

    from matting.inference.frozen import prepare_for_inference
    from matting.inference.graph import AlphaGraph
    from matting.inference.loading import load_net
    from matting.inference.predict import predict_alpha

    net = load_net(ckpt)
    old = prepare_for_inference(load_net(ckpt), jit=True, min_repeats=1)
    new = prepare_for_inference(load_net(ckpt), jit=False)
    fp32, int8 = AlphaGraph(graphs["fp32"], threads=torch.get_num_threads()), AlphaGraph(graphs["int8"], threads=torch.get_num_threads())
    runs = {
        "torchscript (old predict)": lambda: predict_alpha(old, photo, base_size=size),
        "checkpoint (folded, eager)": lambda: predict_alpha(new, photo, base_size=size),
        "checkpoint bf16": lambda: predict_alpha(new, photo, base_size=size, bf16=True),
        "graph fp32": lambda: fp32(photo),
        "graph int8": lambda: int8(photo),
    }
    ms = _median_ms(runs, repeats)
    reference = predict_alpha(net, photo, base_size=size, channels_last=False)
    diff = {name: float(np.abs(run() - reference).max()) for name, run in runs.items()}
    return {name: {"ms": ms[name], "max_diff": diff[name]} for name in runs}


def sad_scores(ckpt: Path, graphs: dict, folder: Path) -> dict:
    from matting.inference.frozen import prepare_for_inference
    from matting.inference.graph import AlphaGraph
    from matting.inference.loading import load_net
    from matting.inference.predict import predict_alpha
    from matting.io.images import read_alpha, read_image
    from matting.metrics import sad

    new = prepare_for_inference(load_net(ckpt), jit=False)
    fp32, int8 = AlphaGraph(graphs["fp32"]), AlphaGraph(graphs["int8"])
    scores = {"graph fp32": [], "checkpoint bf16": [], "graph int8": []}
    diffs = {"checkpoint bf16": [], "graph int8": []}
    for path in sorted((folder / "image").glob("*.png")):
        image, gt = read_image(path), read_alpha(folder / "alpha" / path.name)
        alphas = {"graph fp32": fp32(image), "checkpoint bf16": predict_alpha(new, image, bf16=True), "graph int8": int8(image)}
        for name, alpha in alphas.items():
            scores[name].append(sad(alpha, gt))
        for name in diffs:
            diffs[name].append(float(np.abs(alphas[name] - alphas["graph fp32"]).mean()))
    return {name: {"mean_sad": float(np.mean(v)), "photos": len(v),
                   "mean_abs_diff_vs_fp32": float(np.mean(diffs[name])) if name in diffs else 0.0}
            for name, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/benchmark.py startup", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, type=Path, help="a trained checkpoint")
    p.add_argument("--reference", default=str(REPO / "configs" / "nets" / "modnet_sized.yaml"),
                   help="network config of the reference (random weights; default the MODNet-sized one)")
    p.add_argument("--photo", type=Path, default=SHARED / "image" / "GT01.png", help="the one photo of the start-up runs")
    p.add_argument("--sizes", type=int, nargs="*", default=[512, 1024], help="per-image sizes (none: start-up only)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibration", type=int, default=16)
    p.add_argument("--sad-photos", type=Path, default=SHARED)
    args = p.parse_args(argv)

    import torch

    from matting.inference.export import export_onnx, export_safetensors
    from matting.inference.loading import load_net
    from matting.io.images import read_image

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    result = {"load_average": os.getloadavg(), "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        tmp = Path(tmp)
        net = load_net(args.ckpt)
        models = {"checkpoint": args.ckpt, "graph": tmp / "net.onnx"}
        export_onnx(net, models["graph"])
        import yaml

        from matting.inference.loading import build_net

        ref_config = yaml.safe_load(Path(args.reference).read_text())  # a network spec: class_path, init_args
        ref_config["init_args"]["encoder"]["init_args"]["pretrained"] = False  # timing needs no download
        ref = build_net(ref_config, args.reference)
        models["reference checkpoint"] = tmp / "reference.safetensors"
        export_safetensors(ref, ref_config, models["reference checkpoint"])
        models["reference graph"] = tmp / "reference.onnx"
        export_onnx(ref, models["reference graph"])
        walls = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                walls[name].append(_run_predict(model, args.photo, tmp / "out"))
        result["startup"] = {} if not args.rounds else {name: {"wall_s": float(np.median([w for w, _ in v])), "peak_mb": float(max(m for _, m in v))}
                             for name, v in walls.items()}
        print(json.dumps(result["startup"]), file=sys.stderr)
        result["per_image"] = {}
        photo = read_image(args.photo)
        for size in args.sizes:
            graphs = {"fp32": tmp / f"net{size}.onnx", "int8": tmp / f"net{size}.int8.onnx"}
            export_onnx(net, graphs["fp32"], base_size=size)
            _quantize(graphs["fp32"], graphs["int8"], args.calibration, size)
            import cv2

            square = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
            result["per_image"][size] = per_image(args.ckpt, graphs, size, args.repeats, square)
            print(json.dumps({size: result["per_image"][size]}), file=sys.stderr)
            if size == args.sizes[0] and (args.sad_photos / "alpha").is_dir():
                result["sad"] = sad_scores(args.ckpt, graphs, args.sad_photos)
                print(json.dumps(result["sad"]), file=sys.stderr)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result))
    return 0
