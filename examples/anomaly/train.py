"""Fit the anomaly model offline on generated traffic and save it with joblib.

    python -m examples.anomaly.train [--model PATH] [--events 50000]

The model is a logistic regression on standardised features (a scikit-learn pipeline).
It was picked for its speed on micro-batches: on 500-event batches it predicted in about
1.4 us per event, a HistGradientBoostingClassifier in about 8 us (4 us with 50 shallower
trees), with the same held-out recall within 1% and no false positives for either. It fits
50,000 events in well under a second.

The saved file holds the pipeline, the feature names it was trained on (checked on load)
and the threshold. Models are trusted files: joblib loads them with pickle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from examples.anomaly.features import FEATURES, extract
from examples.anomaly.generator import ATTACK_KINDS, generate

DEFAULT_MODEL = Path(__file__).resolve().parent / ".model" / "model.joblib"
THRESHOLD = 0.5


@dataclass(frozen=True)
class Report:
    """How training went, measured on a held-out set generated with another seed."""

    path: Path
    train_events: int
    test_events: int
    seconds: float  # generating, extracting and fitting
    accuracy: float
    precision: float
    recall: float
    false_positive_rate: float
    recall_by_kind: dict[str, float]

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{kind} {value:.3f}" for kind, value in self.recall_by_kind.items())
        return [
            f"trained on {self.train_events:,} events in {self.seconds:.2f} s -> {self.path}",
            f"held-out ({self.test_events:,} events): accuracy {self.accuracy:.4f}  "
            f"precision {self.precision:.4f}  recall {self.recall:.4f}  "
            f"false-positive rate {self.false_positive_rate:.4f}",
            f"recall by attack kind: {kinds}",
        ]


def fit(features: np.ndarray, labels: np.ndarray) -> Pipeline:
    """A fitted pipeline: standardise, then logistic regression."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features, labels)
    return model


def train(
    path: Path | str = DEFAULT_MODEL,
    events: int = 50_000,
    seed: int = 7,
    attack_share: float = 0.1,
    test_events: int | None = None,
) -> Report:
    """Generate traffic, fit the model, save it to `path` (atomically), report held-out
    metrics. The same arguments give the same model."""
    path = Path(path)
    started = time.perf_counter()
    traffic = generate(events, seed=seed, attack_share=attack_share)
    model = fit(extract(traffic.events), traffic.labels)
    seconds = time.perf_counter() - started
    save(model, path)

    held_out = generate(test_events or max(events // 4, 1000), seed=seed + 1_000_003)
    predicted = model.predict_proba(extract(held_out.events))[:, 1] >= THRESHOLD
    truth = held_out.labels
    kinds = np.array(held_out.kinds)
    return Report(
        path=path,
        train_events=events,
        test_events=len(truth),
        seconds=seconds,
        accuracy=float((predicted == truth).mean()),
        precision=_ratio((predicted & truth).sum(), predicted.sum()),
        recall=_ratio((predicted & truth).sum(), truth.sum()),
        false_positive_rate=_ratio((predicted & ~truth).sum(), (~truth).sum()),
        recall_by_kind={
            kind: _ratio(predicted[kinds == kind].sum(), (kinds == kind).sum())
            for kind in ATTACK_KINDS
        },
    )


def save(model: Pipeline, path: Path) -> None:
    """Write the model file so that a reader never sees half of it (write, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    artifact: dict[str, Any] = {
        "model": model,
        "features": list(FEATURES),
        "threshold": THRESHOLD,
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            joblib.dump(artifact, file)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a model is not a secret
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _ratio(numerator: Any, denominator: Any) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.anomaly.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="where to save it")
    parser.add_argument("--events", type=int, default=50_000, help="training events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--attack-share", type=float, default=0.1)
    args = parser.parse_args(argv)
    report = train(args.model, args.events, args.seed, args.attack_share)
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
