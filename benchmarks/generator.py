"""Speed and peak memory of our StyleGAN3 generator on CPU, against the zero-stuffing reference path.

    python benchmarks/generator.py                    # configs T and R, 128 px and 128x64, batch 8, 2 threads
    python benchmarks/generator.py --configs T128 --batch 2 --repeats 3

Each (config, implementation) runs in its own subprocess so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes torch's allocations) is its own.
``fast`` is our default implementation (polyphase / strided resampling as banded matrix products,
non-grouped modulated convolution); ``ref`` is the same network with the textbook ops NVIDIA's CPU
path uses (zero-stuffed up-sampling, full-length filtering then sub-sampling, grouped per-sample
convolution). Both get the same weights and latents; the script checks that the images agree.
NVIDIA's own figures on this machine kind are from ``conformance/README.md`` (NVlabs/stylegan3
c233a91, reference ops, eval, no grad, fp32, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# z = w = 512; T: cbase 32768, cmax 512; R: doubled channels, 1x1 convs, radial filters (NVIDIA's train.py)
CONFIGS = {
    "T128": dict(res=128, cfg="stylegan3-t"),
    "R128": dict(res=128, cfg="stylegan3-r"),
    "T128x64": dict(res=[128, 64], cfg="stylegan3-t"),
    "R128x64": dict(res=[128, 64], cfg="stylegan3-r"),
}
# NVIDIA's generator on CPU, batch 8, seconds per image (conformance/README.md)
NVIDIA_SEC_PER_IMG_B8 = {"T128": 13.5, "R128": 22.3}
NVIDIA_PEAK_RSS_GB_B8 = {"T128": 8.2, "R128": 15.5}


def build(name: str, impl: str):
    import torch

    from reid_gan.gan.networks import Generator, config_kwargs

    spec = CONFIGS[name]
    torch.manual_seed(0)
    G = Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=spec["res"], img_channels=3,
        mapping_kwargs=dict(num_layers=2), impl=impl, **config_kwargs(spec["cfg"]),
    ).eval()
    # non-trivial state (biases and EMAs start at constants)
    with torch.no_grad():
        for n, b in G.named_buffers():
            if n.endswith("magnitude_ema"):
                b.fill_(1.3)
        for n, p in G.named_parameters():
            if n.endswith("bias") and "affine" not in n and "mapping" not in n:
                p.add_(0.05 * torch.randn_like(p))
    return G


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    G = build(args.worker, args.impl)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(args.batch, G.z_dim, generator=gen)
    with torch.no_grad():
        G(z[:1], None, noise_mode="const")  # warm-up (allocator, kernels)
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            img = G(z, None, noise_mode="const")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    sec = times[len(times) // 2]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.out_img:
        torch.save(img, args.out_img)
    print(json.dumps(dict(
        config=args.worker, impl=args.impl, batch=args.batch, sec_per_batch=sec,
        sec_per_img=sec / args.batch, cpu_sec_per_img=cpu[len(cpu) // 2] / args.batch, img_per_s=args.batch / sec, peak_rss_gb=rss_kb / 1024**2,
        params_m=sum(p.numel() for p in G.parameters()) / 1e6, shape=list(img.shape),
    )))


def run_one(name: str, impl: str, args, img_path: str) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", name, "--impl", impl, "--batch", str(args.batch),
        "--repeats", str(args.repeats), "--threads", str(args.threads), "--out-img", img_path,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark worker {name}/{impl} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1, help="timed forwards per run (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ref", action="store_true", help="skip the reference-path baseline")
    ap.add_argument("--json", type=str, default=None, help="also write the results here")
    ap.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--impl", type=str, default="fast", help=argparse.SUPPRESS)
    ap.add_argument("--out-img", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times include contention; "
          "CPU time is this process's own)")
    print(f"StyleGAN3 generator on CPU: batch {args.batch}, {args.threads} threads, eval, no grad, fp32, "
          f"median of {args.repeats} after a warm-up; torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            fast = run_one(name, "fast", args, f"{tmp}/{name}_fast.pt")
            row = dict(fast=fast)
            if not args.no_ref:
                ref = run_one(name, "ref", args, f"{tmp}/{name}_ref.pt")
                a = torch.load(f"{tmp}/{name}_fast.pt", weights_only=True)
                b = torch.load(f"{tmp}/{name}_ref.pt", weights_only=True)
                row.update(ref=ref, max_abs_diff=(a - b).abs().max().item())
            rows.append((name, row))
            _print_row(name, row, args.batch)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows), indent=2))


def _print_row(name: str, row: dict, batch: int) -> None:
    f = row["fast"]
    line = (f"{name:8s} {f['params_m']:5.1f} M params  out {f['shape'][2]}x{f['shape'][3]}  "
            f"ours: {f['sec_per_img']:6.2f} s/img (CPU time {f['cpu_sec_per_img']:6.2f} s/img)  {f['img_per_s']:6.3f} img/s  "
            f"peak RSS {f['peak_rss_gb']:5.2f} GB")
    if "ref" in row:
        r = row["ref"]
        line += (f" | reference path: {r['sec_per_img']:6.2f} s/img (CPU {r['cpu_sec_per_img']:6.2f})  peak RSS "
                 f"{r['peak_rss_gb']:5.2f} GB  speed-up x{r['sec_per_img'] / f['sec_per_img']:.2f} wall, "
                 f"x{r['cpu_sec_per_img'] / f['cpu_sec_per_img']:.2f} CPU time  (max |diff| {row['max_abs_diff']:.1e})")
    if name in NVIDIA_SEC_PER_IMG_B8 and batch == 8:
        nv = NVIDIA_SEC_PER_IMG_B8[name]
        line += (f" | NVIDIA's code: {nv:.1f} s/img, {NVIDIA_PEAK_RSS_GB_B8[name]:.1f} GB -> "
                 f"x{nv / f['sec_per_img']:.2f} faster")
    print(line, flush=True)


if __name__ == "__main__":
    main()
