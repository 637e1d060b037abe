"""Training-step throughput of a backbone on random inputs: the model's ceiling, without the data
pipeline, for each precision / memory-format combination asked for.

    python benches/train_throughput.py --model efficientnet_b0 --shape 1,512,512 --batch-size 64
    python benches/train_throughput.py --model resnet10t --shape 4,128,256 --input-pool 2 \
        --modes fp32,bf16,bf16+cl --steps 30
    python benches/train_throughput.py --model efficientnet1d --shape 16,2000 --modes fp32,bf16

Each mode runs ``--warmup`` steps, then times ``--steps`` steps (forward, KL loss, backward,
AdamW) with the device synchronized, and prints one line: samples/s and peak memory (the GPU
figures of docs/cluster.md); it runs on the CPU too (modes with AMP are skipped there).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hms.engine import kl_loss, set_deterministic
from hms.models import create_model

MODES = {  # name: (autocast dtype, channels_last)
    "fp32": (None, False),
    "fp32+cl": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+cl": (torch.bfloat16, True),
    "fp16": (torch.float16, False),
    "fp16+cl": (torch.float16, True),
}


def measure(
    model_name: str,
    shape: tuple[int, ...],
    batch_size: int,
    mode: str,
    *,
    steps: int,
    warmup: int,
    input_pool: int,
    device: torch.device,
) -> dict:
    dtype, channels_last = MODES[mode]
    if channels_last and len(shape) != 3:
        raise ValueError(f"mode {mode}: channels_last needs an image input C,H,W, got shape {shape}")
    torch.manual_seed(0)
    model = create_model(model_name, shape[0], input_pool=input_pool).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    x = torch.randn(batch_size, *shape, device=device).to(memory_format=memory_format)
    target = torch.softmax(torch.randn(batch_size, 6, device=device), dim=1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = kl_loss(model(x), target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - started
    peak = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
    return {
        "model": model_name,
        "shape": list(shape),
        "input_pool": input_pool,
        "batch_size": batch_size,
        "mode": mode,
        "samples_per_s": round(steps * batch_size / seconds, 1),
        "peak_gib": peak,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--shape", default="4,128,256", help="input C,H,W (raw-EEG models: links,samples)")
    parser.add_argument("--input-pool", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--modes", default="fp32,fp32+cl,bf16,bf16+cl", help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {unknown}; choose from {', '.join(MODES)}")
    device = torch.device(args.device)
    set_deterministic(False)  # cudnn autotuning on: this measures speed, not reproducibility
    shape = tuple(int(s) for s in args.shape.split(","))
    for mode in args.modes.split(","):
        if device.type != "cuda" and MODES[mode][0] is not None:
            continue
        result = measure(
            args.model,
            shape,
            args.batch_size,
            mode,
            steps=args.steps,
            warmup=args.warmup,
            input_pool=args.input_pool,
            device=device,
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
