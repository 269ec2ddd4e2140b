"""The official trainer as an oracle (`SAM2Train` + `MultiStepMultiMasksAndIous` from the sdist's
`training/` package, run as OFFICIAL_SAM2_NOTES §9 describes), shared by the parity tests and
`bench/train.py`: hydra overrides, the batch, the samplers replaced by our plan, the loss."""

from typing import Callable

import numpy as np
import torch

from sam2_jax.data.synthetic import synthetic_video
from sam2_jax.train.prompts import PromptConfig, PromptPlan
from sam2_jax.transforms import IMAGE_MEAN, IMAGE_STD

NO_DROPOUT = (
    "memory_attention.layer.dropout=0.0",
    "memory_attention.layer.self_attention.dropout=0.0",
    "memory_attention.layer.cross_attention.dropout=0.0",
)
# sam2.1 test_tiny (configs/models/sam2.py) = the tiny yaml with these trunk settings
TEST_TINY = ("image_encoder.trunk.stages=[1,1,2,1]", "image_encoder.trunk.global_att_blocks=[3]")


def synthetic_clip(
    seed: int, num_frames: int, size: int, num_objects: int
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic clip as both trainers take it: images [T, S, S, 3] float32 normalised,
    masks [T, O, S, S] bool (objects 1..O of the generated video)."""
    video = synthetic_video(
        seed, num_frames=num_frames, height=size, width=size, num_objects=num_objects
    )
    images = (video.frames / 255.0 - np.asarray(IMAGE_MEAN)) / np.asarray(IMAGE_STD)
    masks = np.stack([video.labels == k + 1 for k in range(num_objects)], axis=1)
    return images.astype(np.float32), masks


def official_train_overrides(cfg: PromptConfig, model: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Hydra overrides turning the official model config into `SAM2Train` with the prompt
    settings of `cfg`, plus `model` (`key=value` under `model.`)."""
    train = {
        "_target_": "training.model.sam2.SAM2Train",
        "prob_to_use_pt_input_for_train": cfg.prob_to_use_pt_input,
        "prob_to_use_box_input_for_train": cfg.prob_to_use_box_input,
        "num_init_cond_frames_for_train": cfg.num_init_cond_frames,
        "rand_init_cond_frames_for_train": cfg.rand_init_cond_frames,
        "num_frames_to_correct_for_train": cfg.num_frames_to_correct,
        "rand_frames_to_correct_for_train": cfg.rand_frames_to_correct,
        "num_correction_pt_per_frame": cfg.num_correction_pt_per_frame,
        "prob_to_sample_from_gt_for_train": cfg.prob_to_sample_from_gt,
        "add_all_frames_to_correct_as_cond": cfg.add_all_frames_to_correct_as_cond,
    }
    values = {k: str(v).lower() if isinstance(v, bool) else v for k, v in train.items()}
    return tuple(f"++model.{k}={v}" for k, v in values.items()) + tuple(
        f"++model.{o}" for o in model
    )


def official_batch(images: np.ndarray, masks: np.ndarray):
    """One clip (images [T, S, S, 3] f32 normalised, masks [T, O, S, S] bool) as the official
    `BatchedVideoDatapoint`."""
    from training.utils.data_utils import Frame, Object, VideoDatapoint, collate_fn

    frames = [
        Frame(
            data=torch.from_numpy(images[t]).permute(2, 0, 1),
            objects=[Object(k, t, torch.from_numpy(masks[t, k])) for k in range(masks.shape[1])],
        )
        for t in range(len(images))
    ]
    size = images.shape[1:3]
    return collate_fn([VideoDatapoint(frames=frames, video_id=0, size=size)], "clip")


def patch_official_samplers(setattr_: Callable, plan: PromptPlan, config: PromptConfig) -> list:
    """Make the official trainer take the plan's clicks and boxes, in its call order (initial
    frames, then corrections), through `setattr_(module, name, value)` (pytest's
    `monkeypatch.setattr`). Returns the queue of clicks, empty once all were consumed."""
    import training.model.sam2 as official

    init = [int(t) for t in plan.order if plan.is_init_cond[t] and plan.use_points]
    is_box = {t: plan.point_labels[t][0, 0] == 2 for t in init}
    queue = [
        (plan.point_coords[t][:, :1], plan.point_labels[t][:, :1]) for t in init if not is_box[t]
    ]
    boxes = [(plan.point_coords[t], plan.point_labels[t]) for t in init if is_box[t]]
    for t in (int(t) for t in plan.order if plan.correct[t]):
        for c in range(config.num_correction_pt_per_frame):
            queue.append(
                (plan.correction_coords[t, c][:, None], plan.correction_labels[t, c][:, None])
            )

    def next_point(gt_masks, pred_masks, method):
        points, labels = queue.pop(0)
        return torch.from_numpy(np.array(points)), torch.from_numpy(np.array(labels))

    def box_points(masks, *args, **kwargs):
        coords, labels = boxes.pop(0)
        return torch.from_numpy(np.array(coords)), torch.from_numpy(np.array(labels))

    setattr_(official, "get_next_point", next_point)
    setattr_(official, "sample_box_points", box_points)
    return queue


def official_criterion():
    """`MultiStepMultiMasksAndIous` with the official fine-tune weights (sam2.1 MOSE yaml)."""
    from training.loss_fns import MultiStepMultiMasksAndIous

    return MultiStepMultiMasksAndIous(
        weight_dict={"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1},
        supervise_all_iou=True,
        iou_use_l1_loss=True,
        pred_obj_scores=True,
        focal_gamma_obj_score=0.0,
        focal_alpha_obj_score=-1.0,
    )
