"""Training configs: `python train.py --config configs/train/default.py[:ARG] [key=value ...]`.

ARG: "" (default) the small CPU run on synthetic videos (reduced Hiera at 192 px);
"mose_finetune" the official sam2.1 MOSE fine-tune recipe (base+ at 1024 px, 8 frames,
3 objects, lr 5e-6 / vision 3e-6, 40 epochs of MOSE in the PNG layout under data.root).
Every field is overridable; the sub-configs' fields are those of `ClipConfig`, `PromptConfig`,
`LossConfig` and `OptimizerConfig`.
"""

import dataclasses

import ml_collections

from sam2_jax.data.clips import ClipConfig
from sam2_jax.train.losses import LossConfig
from sam2_jax.train.optimizer import OptimizerConfig
from sam2_jax.train.prompts import PromptConfig


def _fields(config_class, **changes) -> dict:
    return {**dataclasses.asdict(config_class()), **changes}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = "sam2.1_test_tiny"  # model config name (configs/models/sam2.py) or file
    # One mask output on tracked frames: with three (the official), the masks of a 300-step run
    # were fragments (README, Training).
    c.model_overrides = (
        "image_size=192", "tracking.memory_dtype=float32", "multimask_output_for_tracking=False",
    )  # fmt: skip
    c.init_from = ""  # official .pt, orbax params or HF checkpoint to fine-tune from
    # How random weights start (not used with init_from): "" as initialised, "memory_path"
    # (sam2_jax/train/memory_path_init.py: the memory path tracks the object from step 0; then
    # the decoder's read-out of the mask is fitted on the first frames of this many training
    # clips, sam2_jax/train/read_out_init.py; 0: not fitted).
    c.init_scheme = "memory_path"
    c.init_read_out_clips = 12
    c.frozen = ("image_encoder",)  # top-level modules that keep their (random) weights
    c.dtype = "float32"  # compute dtype (bfloat16: params and optimizer state stay fp32)
    c.seed = 0
    c.run_dir = "runs/default"
    c.total_steps = 200  # 0: export and evaluate the initial model only
    c.batch_size = 2  # clips per step, over all hosts
    c.grad_accum_steps = 1
    c.nan_policy = "stop"  # "stop": keep the last good checkpoint and exit; "skip": go on
    c.data = dict(
        source="synthetic",  # synthetic | png | sav | sa1b | array_record
        root="",  # dataset folder (png: JPEGImages/ + Annotations/) or .array_record file
        num_videos=512,  # synthetic: videos (seeds seed .. seed + num_videos - 1)
        video_frames=12,
        video_height=128,
        video_width=160,
        video_objects=3,
        num_threads=0,
    )
    # Frames 1-3 video frames apart: more motion per clip than consecutive frames.
    c.clip = _fields(ClipConfig, num_frames=4, max_num_objects=3, image_size=192, max_stride=3)
    # The CPU run trains for eval.py's protocol (a mask prompt on the first frame, then tracking)
    # at a from-scratch learning rate; `:mose_finetune` has the official prompt mix and lrs.
    c.prompts = _fields(
        PromptConfig, prob_to_use_pt_input=0.0, num_init_cond_frames=1,
        rand_init_cond_frames=False, num_correction_pt_per_frame=3,
    )  # fmt: skip
    c.loss = _fields(LossConfig)
    # lr 1e-4 decaying to 1e-5: the init already tracks; 1e-3 (from the plain init) undoes its
    # precision (README, Training).
    c.optimizer = _fields(
        OptimizerConfig, base_lr=1e-4, base_lr_end=1e-5, vision_lr=1e-4, vision_lr_end=1e-5,
        grad_clip_norm=1.0, warmup_steps=20,
    )  # fmt: skip
    c.mesh = dict(data=-1, fsdp=1, model=1)
    c.fsdp_min_size = 2**16
    c.checkpoint = dict(every_steps=100, max_to_keep=3)
    c.log_every = 10
    c.peak_flops_per_device = 0.0  # for the MFU estimate (0: not reported)
    # eval.py on a held-out synthetic split every `every_steps` (0: at the end, < 0: never)
    c.eval = dict(every_steps=0, data="runs/synthetic_val", max_videos=8)
    if arg == "mose_finetune":
        c.model, c.dtype = "sam2.1_hiera_b+", "bfloat16"
        c.init_from = "checkpoints/sam2.1_hiera_base_plus.pt"
        c.frozen = ()
        c.run_dir, c.batch_size, c.total_steps = "runs/mose_finetune", 8, 40 * 1000
        c.data.source, c.data.root = "png", "data/MOSE/train"
        c.clip = _fields(ClipConfig)
        c.prompts = _fields(PromptConfig)
        c.optimizer = _fields(OptimizerConfig)
        c.model_overrides = ("image_encoder.trunk.drop_path_rate=0.1",)
    elif arg:
        raise ValueError(f"unknown training config argument {arg!r}; known: '', mose_finetune")
    return c
