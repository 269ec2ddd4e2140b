"""J (region similarity) and F (boundary F-measure) for video object segmentation.

Counterparts: davisvideochallenge/davis2017-evaluation `davis2017/metrics.py` (`db_eval_iou`,
`db_eval_boundary`, `f_measure`, `_seg2bmap`), `davis2017/utils.py` (`db_statistics`),
`davis2017/evaluation.py` (`_evaluate_semisupervised`, `evaluate`), `davis2017/davis.py` and
`results.py` (how label maps become per-object masks); hkchengrex/vos-benchmark
`evaluator.py` (`Evaluator`); facebookresearch/sam2 `sav_dataset/utils/sav_benchmark.py`
(`VideoEvaluator`, `Evaluator`). Written from those definitions with NumPy/SciPy only.

Definitions (all frames are [H, W] arrays):
- J = |gt & pred| / |gt | pred| over non-void pixels; 1 when the union is empty.
- F = 2PR / (P + R) between one-pixel boundary maps (`boundary_map`, the toolkit's
  `_seg2bmap`); a boundary pixel matches when the other boundary, dilated by a disk of radius
  ceil(bound_th * ||(H, W)||) (bound_th=0.008), covers it. No boundary on either side: P = R = 1;
  only the prediction's empty: P = 1, R = 0; only the ground truth's empty: P = 0, R = 1.
  Void pixels are removed from both masks before the boundaries are extracted.

Protocols:
- `davis_sequence_scores` (DAVIS 2017 semi-supervised, also used for MOSE): frames [1:-1];
  objects 1..max id of the first frame's ground truth; every object scored on every frame; a
  predicted id above that is an error. The toolkit sets ground-truth 255 to 0 before scoring
  and its void mask (`all_gt_masks == 255` on boolean masks) is always empty, so by default
  void pixels count as background, as in its published numbers; `exclude_void=True` instead
  excludes them from J and F, as `db_eval_iou`/`f_measure` would with a void mask.
- `first_appearance_scores` (vos-benchmark, SA-V's DAVIS-style branch): frames [1:-1];
  each object is scored from its first appearance in the ground truth or the prediction;
  only objects seen in the ground truth are reported; every non-zero value is an object.
- `sav_object_scores` (SA-V per-object PNGs): the same, for one binary object over the frames
  annotated for it.
"""

import dataclasses
import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

BOUND_TH = 0.008
VOID_LABEL = 255
STATISTICS_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclasses.dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object.

    `frames` are the indices (into the sequences given to the protocol function) of the frames
    the object was scored on; `j` and `f` are [len(frames)] float64 in [0, 1].
    """

    object_id: int
    frames: tuple[int, ...]
    j: np.ndarray
    f: np.ndarray


@dataclasses.dataclass(frozen=True)
class ObjectStatistics:
    """Mean, recall and decay of J and F for one object (`db_statistics`), all in [0, 1]."""

    sequence: str
    object_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float


def region_similarity(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None
) -> np.ndarray:
    """J of boolean masks [..., H, W] -> [...] float64 (`db_eval_iou`).

    Void pixels (`void`, [..., H, W]) are left out of intersection and union; an empty union
    gives 1.
    """
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    _check_same_shape(gt, pred, "ground truth", "prediction")
    valid = True if void is None else ~_checked_void(void, gt.shape)
    inter = np.sum(gt & pred & valid, axis=(-2, -1))
    union = np.sum((gt | pred) & valid, axis=(-2, -1))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1)).astype(np.float64)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a mask [H, W] -> [H, W] bool (`_seg2bmap` at full size).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour;
    on the last row only the right neighbour counts, on the last column only the lower one, and
    the bottom-right pixel is never a boundary (so the image border itself is not a boundary).
    """
    seg = np.asarray(mask, bool)
    if seg.ndim != 2:
        raise ValueError(f"boundary_map takes a [H, W] mask, got shape {seg.shape}")
    right = np.zeros_like(seg)
    down = np.zeros_like(seg)
    diag = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    down[:-1, :] = seg[1:, :]
    diag[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ right) | (seg ^ down) | (seg ^ diag)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ down[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Dilation radius in pixels: `bound_th` itself when >= 1 (an integer), else
    ceil(bound_th * sqrt(H^2 + W^2)) (`f_measure`'s `bound_pix`)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a bound_th >= 1 is a radius in pixels and must be whole: {bound_th}")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def disk(radius: int) -> np.ndarray:
    """Disk footprint [2r+1, 2r+1] bool: x^2 + y^2 <= r^2 (skimage.morphology.disk)."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of [H, W] by `disk(radius)`, pixels outside the image ignored -> [H, W].

    Equals `cv2.dilate(mask.astype(uint8), disk(radius))` (the toolkit's call: centred anchor,
    constant border that never wins the max). The disk is decomposed into its rows: row dy is
    a horizontal segment of half-width isqrt(r^2 - dy^2), so the dilation is the union over dy
    of 1-D maximum filters shifted by dy.
    """
    mask = np.asarray(mask, bool)
    height = mask.shape[0]
    out = np.zeros_like(mask)
    rows: dict[int, np.ndarray] = {}
    for dy in range(-min(radius, height - 1), min(radius, height - 1) + 1):
        half = math.isqrt(radius * radius - dy * dy)
        if half not in rows:
            rows[half] = ndimage.maximum_filter1d(mask, 2 * half + 1, axis=1, mode="constant")
        row = rows[half]
        if dy >= 0:
            out[: height - dy] |= row[dy:]
        else:
            out[-dy:] |= row[: height + dy]
    return out


def _f_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None, radius: int) -> float:
    """F of boolean masks [H, W] (`f_measure`)."""
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    gt_boundary = boundary_map(gt)
    pred_boundary = boundary_map(pred)
    n_gt = int(gt_boundary.sum())
    n_pred = int(pred_boundary.sum())
    if n_gt == 0 or n_pred == 0:
        # empty boundaries: (P, R) = (1, 1) both, (1, 0) prediction, (0, 1) ground truth
        return 1.0 if n_gt == n_pred else 0.0
    # dilations are only read at boundary pixels, and only boundary pixels dilate: cropping both
    # maps to the bounding box of all boundary pixels changes nothing and saves time
    both = gt_boundary | pred_boundary
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    gt_boundary, pred_boundary = gt_boundary[box], pred_boundary[box]
    precision = np.sum(pred_boundary & dilate_disk(gt_boundary, radius)) / n_pred
    recall = np.sum(gt_boundary & dilate_disk(pred_boundary, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def boundary_f_measure(
    gt: np.ndarray,
    pred: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> np.ndarray:
    """F of boolean masks [..., H, W] -> [...] float64 (`db_eval_boundary`)."""
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    _check_same_shape(gt, pred, "ground truth", "prediction")
    if gt.ndim < 2:
        raise ValueError(f"masks must be [..., H, W], got shape {gt.shape}")
    void = None if void is None else _checked_void(void, gt.shape)
    radius = boundary_radius(gt.shape[-2], gt.shape[-1], bound_th)
    out = np.empty(gt.shape[:-2], np.float64)
    for idx in np.ndindex(out.shape):
        out[idx] = _f_measure(gt[idx], pred[idx], None if void is None else void[idx], radius)
    return out


def db_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall and decay of per-frame values [T], T >= 1 (`db_statistics`).

    Mean is the NaN-ignoring mean, recall the fraction of values > 0.5; decay is the mean of
    the first quarter minus the mean of the last, with the toolkit's bin edges
    round(linspace(1, T, 5)) - 1. The toolkit casts those edges to uint8 (then adds 1 as
    integers, NumPy 1 semantics), and so does this: for T > 256 they wrap around and the decay is
    what the toolkit reports (often NaN).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"db_statistics takes per-frame values [T], T >= 1, got {values.shape}")
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        decay = np.nanmean(values[edges[0] : edges[1] + 1]) - np.nanmean(
            values[edges[3] : edges[4] + 1]
        )
    return float(mean), float(recall), float(decay)


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {a.shape} and {name_b} {b.shape} do not have the same shape")


def _checked_void(void: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    void = np.asarray(void, bool)
    if void.shape != shape:
        raise ValueError(f"void mask {void.shape} and masks {shape} do not have the same shape")
    return void


def _label_frame(labels: np.ndarray, what: str, t: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{what} frame {t} must be an integer label map [H, W], got {labels.dtype} "
            f"{list(labels.shape)}"
        )
    return labels


def _object_frame_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    object_ids: Iterable[int],
    void: np.ndarray | None,
    radius: int,
) -> list[tuple[float, float]]:
    """(J, F) of each object id on one pair of label maps [H, W]."""
    scores = []
    for k in object_ids:
        gt_k, pred_k = gt == k, pred == k
        j = float(region_similarity(gt_k, pred_k, void))
        scores.append((j, _f_measure(gt_k, pred_k, void, radius)))
    return scores


def _evaluated_frames(num_frames: int, skip_first_and_last: bool) -> range:
    return range(1, num_frames - 1) if skip_first_and_last else range(num_frames)


def davis_sequence_scores(
    gt: Sequence[np.ndarray],
    pred: Sequence[np.ndarray],
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> list[ObjectScores]:
    """DAVIS 2017 semi-supervised J and F of one sequence (`DAVISEvaluation.evaluate`).

    gt, pred: T label maps [H, W] each (integer ids, 0 = background, 255 = void in gt), indexed
    lazily, T >= 3 (pred[0] and pred[T-1] are not read). Objects are 1..max(gt[0]) (void
    aside), each scored on frames 1..T-2, in id order. Raises ValueError when a prediction holds
    an id above that (the toolkit's "index higher than the number of objects"). An object never
    predicted scores as an empty mask (the toolkit would abort with the same message).
    """
    num_frames = len(gt)
    if num_frames < 3:
        raise ValueError(
            f"DAVIS scoring skips the first and last frame and needs >= 3 frames, got {num_frames}"
        )
    if len(pred) != num_frames:
        raise ValueError(f"{num_frames} ground-truth frames but {len(pred)} predicted frames")
    first = _label_frame(gt[0], "ground-truth", 0)
    num_objects = int(np.max(np.where(first == VOID_LABEL, 0, first)))
    object_ids = range(1, num_objects + 1)
    frames = _evaluated_frames(num_frames, True)
    radius = boundary_radius(first.shape[0], first.shape[1], bound_th)
    per_frame = []
    for t in frames:
        gt_t = _label_frame(gt[t], "ground-truth", t)
        pred_t = _label_frame(pred[t], "predicted", t)
        _check_same_shape(gt_t, pred_t, f"ground truth of frame {t}", "its prediction")
        _check_same_shape(gt_t, first, f"ground truth of frame {t}", "that of frame 0")
        if pred_t.size and int(pred_t.max()) > num_objects:
            raise ValueError(
                f"predicted frame {t} holds object id {int(pred_t.max())}, higher than the "
                f"number of objects in the sequence's first ground-truth frame ({num_objects})"
            )
        void_t = gt_t == VOID_LABEL
        gt_t = np.where(void_t, 0, gt_t)
        per_frame.append(
            _object_frame_scores(gt_t, pred_t, object_ids, void_t if exclude_void else None, radius)
        )
    return [
        ObjectScores(
            object_id=k,
            frames=tuple(frames),
            j=np.array([scores[i][0] for scores in per_frame], np.float64),
            f=np.array([scores[i][1] for scores in per_frame], np.float64),
        )
        for i, k in enumerate(object_ids)
    ]


def first_appearance_scores(
    gt: Sequence[np.ndarray],
    pred: Sequence[np.ndarray],
    skip_first_and_last: bool = True,
    bound_th: float = BOUND_TH,
) -> list[ObjectScores]:
    """J and F from each object's first appearance (vos-benchmark / SA-V `Evaluator`).

    gt, pred: T label maps [H, W] (every non-zero value is an object id, 255 included),
    indexed lazily. Frames 1..T-2 (all frames without `skip_first_and_last`); an object is
    scored from the first of those frames where it is in the ground truth or the prediction
    onwards; only objects present in the ground truth of some scored frame are returned, in
    id order.
    """
    num_frames = len(gt)
    if len(pred) != num_frames:
        raise ValueError(f"{num_frames} ground-truth frames but {len(pred)} predicted frames")
    seen_gt: set[int] = set()
    seen: set[int] = set()
    start: dict[int, int] = {}
    j_lists: dict[int, list[float]] = {}
    f_lists: dict[int, list[float]] = {}
    radius = None
    for t in _evaluated_frames(num_frames, skip_first_and_last):
        gt_t = _label_frame(gt[t], "ground-truth", t)
        pred_t = _label_frame(pred[t], "predicted", t)
        _check_same_shape(gt_t, pred_t, f"ground truth of frame {t}", "its prediction")
        if radius is None:
            radius = boundary_radius(gt_t.shape[0], gt_t.shape[1], bound_th)
        gt_ids = {int(k) for k in np.unique(gt_t) if k != 0}
        seen_gt |= gt_ids
        seen |= gt_ids | {int(k) for k in np.unique(pred_t) if k != 0}
        object_ids = sorted(seen)
        frame_scores = _object_frame_scores(gt_t, pred_t, object_ids, None, radius)
        for k, (j, f) in zip(object_ids, frame_scores):
            start.setdefault(k, t)
            j_lists.setdefault(k, []).append(j)
            f_lists.setdefault(k, []).append(f)
    return [
        ObjectScores(
            object_id=k,
            frames=tuple(range(start[k], start[k] + len(j_lists[k]))),
            j=np.array(j_lists[k], np.float64),
            f=np.array(f_lists[k], np.float64),
        )
        for k in sorted(seen_gt)
    ]


class _Binarized(Sequence):
    """Lazy view of masks as 0/1 uint8 label maps."""

    def __init__(self, masks: Sequence[np.ndarray]):
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, t: int) -> np.ndarray:
        return (np.asarray(self.masks[t]) > 0).astype(np.uint8)


def sav_object_scores(
    object_id: int,
    gt: Sequence[np.ndarray],
    pred: Sequence[np.ndarray],
    skip_first_and_last: bool = True,
    bound_th: float = BOUND_TH,
) -> ObjectScores:
    """J and F of one SA-V object (`VideoEvaluator` on a per-object folder).

    gt, pred: the object's masks [H, W] (non-zero = object) on the T frames annotated for it,
    indexed lazily. Scored on frames 1..T-2 of those (all without `skip_first_and_last`), from
    the object's first appearance in the ground truth or the prediction. Raises ValueError when
    the object is not in the ground truth of any scored frame (the SA-V evaluator fails there).
    """
    binary_gt = _Binarized(gt)
    binary_pred = _Binarized(pred)
    scores = first_appearance_scores(binary_gt, binary_pred, skip_first_and_last, bound_th)
    if not scores:
        raise ValueError(
            f"object {object_id} is absent from the ground truth of every scored frame "
            f"({len(gt)} annotated, first and last skipped: {skip_first_and_last}); "
            "the SA-V evaluator cannot score it"
        )
    return dataclasses.replace(scores[0], object_id=object_id)


def object_statistics(sequence: str, scores: Iterable[ObjectScores]) -> list[ObjectStatistics]:
    """`db_statistics` of J and F for each object of a sequence."""
    stats = []
    for s in scores:
        j_mean, j_recall, j_decay = db_statistics(s.j)
        f_mean, f_recall, f_decay = db_statistics(s.f)
        stats.append(
            ObjectStatistics(
                sequence, s.object_id, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay
            )
        )
    return stats


def global_statistics(stats: Sequence[ObjectStatistics]) -> dict[str, float]:
    """Benchmark summary over all objects of all sequences (the toolkit's global table).

    Keys `STATISTICS_KEYS`: each X-Mean/Recall/Decay is the mean over objects;
    J&F-Mean = (J-Mean + F-Mean) / 2. Values in [0, 1] (the toolkit prints them x100).
    """
    if not stats:
        raise ValueError("no scored objects to summarise")

    def mean(field: str) -> float:
        return float(np.mean([getattr(s, field) for s in stats]))

    j_mean, f_mean = mean("j_mean"), mean("f_mean")
    return {
        "J&F-Mean": (j_mean + f_mean) / 2,
        "J-Mean": j_mean,
        "J-Recall": mean("j_recall"),
        "J-Decay": mean("j_decay"),
        "F-Mean": f_mean,
        "F-Recall": mean("f_recall"),
        "F-Decay": mean("f_decay"),
    }
