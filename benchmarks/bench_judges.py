"""Time one run of each experiment judge on a dataset: the subtomogram classifier and DeepFinder.

Prints, per judge: wall and CPU seconds of loading, training (all epochs, with validation)
and testing, the best epoch, the test score and the peak memory of the run. Each judge runs
once per ``--repeats``, alternating, so that machine noise affects both alike.

    python benchmarks/bench_judges.py DATASET [--modality benchmark] [--preset small]
        [--judges classify deepfinder] [--repeats 1] [--threads N] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from faket.pipeline.resources import measure_resources


def run_classify(dataset: str, modality: str, preset: str, device: str, threads) -> dict:
    from faket.evaluation.classify import classify_config, classify_on_dataset, load_classify_data

    config = classify_config(preset, device=device, threads=threads)
    started, cpu = time.perf_counter(), time.process_time()
    data = load_classify_data(dataset, modality, config)
    load = time.perf_counter() - started
    result, scores, _ = classify_on_dataset(dataset, modality, config, data=data)
    return {
        "load_s": load,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "score": f"F1 macro {scores.f1_macro:.3f} ({len(data.test)} boxes)",
    }


def run_deepfinder(dataset: str, modality: str, preset: str, device: str, threads) -> dict:
    from faket.evaluation import train_config
    from faket.evaluation.experiment import load_dataset, train_on_dataset

    config = train_config(preset, device=device)
    started, cpu = time.perf_counter(), time.process_time()
    tomograms = load_dataset(dataset, modality)
    load = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        result, scores = train_on_dataset(
            dataset, modality, config, Path(folder) / "run", tomograms=tomograms
        )
    return {
        "load_s": load,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "score": f"loc. F1 {scores.localization_f1:.3f}, class. F1 macro "
        f"{scores.classification_f1_macro:.3f}",
    }


JUDGES = {"classify": run_classify, "deepfinder": run_deepfinder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--modality", default="benchmark")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--judges", nargs="+", default=list(JUDGES), choices=list(JUDGES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="classifier threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(
        f"dataset {args.dataset}, modality {args.modality}, preset {args.preset}, "
        f"torch threads {torch.get_num_threads()}, device {args.device}\n"
    )
    header = f"{'judge':<11} {'load s':>7} {'run s':>8} {'CPU s':>8} {'epochs':>6} {'best':>5} "
    header += f"{'peak MiB':>8}  test score"
    print(header)
    print("-" * len(header))
    for _ in range(args.repeats):
        for judge in args.judges:
            with measure_resources() as measured:
                row = JUDGES[judge](
                    args.dataset, args.modality, args.preset, args.device, args.threads
                )
            print(
                f"{judge:<11} {row['load_s']:>7.1f} {row['wall_s']:>8.1f} {row['cpu_s']:>8.1f} "
                f"{row['epochs']:>6} {row['best_epoch']:>5} "
                f"{measured['peak_rss_bytes'] / 2**20:>8.0f}  {row['score']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
