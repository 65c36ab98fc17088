"""SSL-AASIST: CPU throughput of a small configuration, and the compute of the XLS-R 300M one.

1. Measured: the network alone (eval mode, inference mode, random weights, equal-length
   random inputs) in a small configuration, XLS-R's convolutional feature encoder (7 layers,
   512 channels) with `--layers` transformer layers of `--dim` dims (4 heads, feed-forward
   4 x dim) and the published back-end, at `--seconds`-second inputs in batches of
   `--batch-size`, fp32 and bf16 autocast; best of `--repeats` timed passes after one
   warm-up, as utterances/s and audio-seconds/s.
2. Counted, not timed: floating-point operations of the published configuration (XLS-R 300M,
   24 layers, 1024 dims, + the back-end) per input, on the meta device
   (`torch.utils.flop_counter`, a multiply-add = 2 FLOPs; nothing is allocated), for 4 s,
   the 30-s window and a 300-s utterance (ten 30-s windows).
3. Estimated from those counts, not measured: GPU throughput at an assumed sustained rate
   (`--gpu-tflops`, default 300 TFLOP/s: about 30 % of an H100/H200's dense bf16 peak).
4. With `--memory S [S ...]`: peak resident memory of one forward pass of the small
   configuration on one S-second input, each in a fresh process, windowed (`window_seconds`
   10) and in one pass (windowing off), to show what the windows bound.

    python benchmarks/bench_ssl.py
    python benchmarks/bench_ssl.py --layers 2 --dim 256 --seconds 4 --batch-size 4 --repeats 3
    python benchmarks/bench_ssl.py --memory 10 30 60

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.ssl_aasist import SSL_AASIST  # noqa: E402
from sourcetrace.training.recipes import init_untrained  # noqa: E402

XLSR_CONV = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2


def small_config(layers: int, dim: int) -> dict:
    ssl = {"extractor_mode": "layer_norm", "extractor_conv_layer_config": XLSR_CONV, "extractor_conv_bias": True,
           "encoder_embed_dim": dim, "encoder_projection_dropout": 0.0, "encoder_pos_conv_kernel": 128,
           "encoder_pos_conv_groups": 16, "encoder_num_layers": layers, "encoder_num_heads": 4,
           "encoder_attention_dropout": 0.0, "encoder_ff_interm_features": 4 * dim, "encoder_ff_interm_dropout": 0.0,
           "encoder_dropout": 0.0, "encoder_layer_norm_first": True, "encoder_layer_drop": 0.0}
    return {"architecture": "SSL_AASIST", "ssl": "wav2vec2_model", "ssl_config": ssl}


def cpu_throughput(args) -> None:
    torch.manual_seed(0)
    model = SSL_AASIST(small_config(args.layers, args.dim), 2)
    init_untrained(model)
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    waves = torch.randn(args.batch_size, int(args.seconds * 16000))
    print(f"CPU, {torch.get_num_threads()} threads: {args.layers} layers x {args.dim} dims ({params:.1f} M parameters), "
          f"batch {args.batch_size} x {args.seconds:g} s")
    for precision in ("fp32", "bf16"):
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        times = []
        with torch.inference_mode(), cast:
            model(waves)  # warm-up
            for _ in range(args.repeats):
                began = time.perf_counter()
                model(waves)
                times.append(time.perf_counter() - began)
        best = min(times)
        print(f"  {precision}: {args.batch_size / best:.2f} utt/s, {args.batch_size * args.seconds / best:.1f} audio-s/s "
              f"(passes {', '.join(f'{t:.2f}' for t in times)} s)")


def xlsr_flops(args) -> None:
    with torch.device("meta"):
        model = SSL_AASIST({"architecture": "SSL_AASIST"}, 2).eval()
    print(f"XLS-R 300M SSL-AASIST ({sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters), "
          f"FLOPs counted on the meta device; GPU figures estimated at {args.gpu_tflops:g} TFLOP/s sustained:")
    for seconds in (4, 30, 300):
        x = torch.empty(1, seconds * 16000, device="meta")
        with FlopCounterMode(display=False) as counter:
            model(x)
        flops = counter.get_total_flops()
        per_s = flops / seconds
        print(f"  {seconds:>3} s input: {flops / 1e9:8.1f} GFLOP ({per_s / 1e9:.1f} GFLOP per audio second) -> "
              f"about {args.gpu_tflops * 1e12 / per_s:,.0f} audio-s/s, {args.gpu_tflops * 1e12 / flops:,.1f} utt/s "
              f"(estimate)")


def peak_memory(args) -> None:
    """Runs in a fresh process per (seconds, window): `--peak SECONDS WINDOW` prints the peak RSS."""
    print("peak resident memory, small configuration, one input, fp32 (fresh process each):")
    for seconds in args.memory:
        row = []
        for window in (10, 10_000):
            done = subprocess.run([sys.executable, __file__, "--layers", str(args.layers), "--dim", str(args.dim),
                                   "--peak", str(seconds), str(window)], capture_output=True, text=True, check=True)
            row.append(float(done.stdout.split()[-1]))
        print(f"  {seconds:g} s: windowed (10 s) {row[0]:.2f} GB, one pass {row[1]:.2f} GB")


def one_peak(args) -> None:
    seconds, window = args.peak
    torch.manual_seed(0)
    model = SSL_AASIST({**small_config(args.layers, args.dim), "window_seconds": window}, 2)
    init_untrained(model)
    model.eval()
    with torch.inference_mode():
        model(torch.randn(1, int(seconds * 16000)))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)  # kB on Linux -> GB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-tflops", type=float, default=300.0)
    parser.add_argument("--memory", type=float, nargs="*", default=[], metavar="SECONDS")
    parser.add_argument("--peak", type=float, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        return one_peak(args)
    if args.memory:
        return peak_memory(args)
    cpu_throughput(args)
    xlsr_flops(args)


if __name__ == "__main__":
    main()
