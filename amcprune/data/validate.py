"""Full validation of a RadioML-layout file: layout, every label, the split, and NaN/Inf frames."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from amcprune.data.radioml import RadioMLFile, check_all_labels, check_finite, sample_frame_indices
from amcprune.data.split import split_fingerprint


@dataclass
class ValidationReport:
    path: str
    n_frames: int
    checks: list[str] = field(default_factory=list)


def validate_file(
    path: str | os.PathLike, full: bool = False, quiet: bool = False, chunk_frames: int = 65536
) -> ValidationReport:
    """Run every check; raise :class:`AmcpruneError` at the first failure, else return what was checked.

    Checks: the layout (datasets, shapes, SNR order from Z), all of Y (one-hot, class consistent with the
    frame's position) read in chunks, the prescribed split, and NaN/Inf in X: in the first, middle and last
    frame of each (class, SNR) pair, or in every frame with ``full=True`` (reads X in chunks).
    """
    rf = RadioMLFile(path)
    report = ValidationReport(path=str(rf.path), n_frames=rf.n_frames)
    report.checks.append(
        f"layout: X {rf.shapes['X'][0]}, Y {rf.shapes['Y'][0]}, Z {rf.shapes['Z'][0]}; "
        f"{rf.n_classes} classes x {rf.n_snrs} SNRs x {rf.frames_per_pair} frames, Z ordered by class then SNR"
    )

    check_all_labels(rf, chunk_frames=chunk_frames, quiet=quiet)
    report.checks.append(f"labels: all {rf.n_frames} rows of Y one-hot and consistent with the layout")

    train, test = rf.prescribed_split()
    covered = np.zeros(rf.n_frames, dtype=np.int8)
    covered[train] += 1
    covered[test] += 1
    if not np.all(covered == 1):
        raise rf.error("prescribed split is not a partition of the frames")  # pragma: no cover (a bug)
    report.checks.append(
        f"split: {train.size} train, {test.size} test frames, test-split sha256 {split_fingerprint(test)}"
    )

    if full:
        n = check_finite(rf, None, quiet=quiet, chunk_frames=4096)
        report.checks.append(f"finite: all {n} frames of X free of NaN/Inf")
    else:
        n = check_finite(rf, sample_frame_indices(rf), quiet=quiet)
        report.checks.append(f"finite: {n} sampled frames of X free of NaN/Inf (use --full to scan every frame)")
    return report
