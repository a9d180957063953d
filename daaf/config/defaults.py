"""The core defaults. Key names follow detectron2 wherever detectron2 has one. A component family
adds its own keys through a config extension (:mod:`daaf.config.extensions`): DAAF's attention
branches in :mod:`daaf.modeling.attention.config`, the detectron2 labeler in
:mod:`daaf.pseudo_label.detectron2_labeler`.

Sizes are (height, width). Pixel statistics are in 0-255 RGB, as detectron2's are in 0-255.
"""

from .checks import ListOf, Matches, OneOf, OrNone, Range, declare_value_checks
from .config import CfgNode as CN

_C = CN()
_C.VERSION = 1

# Python modules (dotted names or .py paths) imported before anything is built, so that
# components a user registered in their own code can be named in this config.
_C.IMPORTS = []

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "ReIDNetwork"
_C.MODEL.DEVICE = "cuda"
# Checkpoint (path or URL) loaded when not resuming. Empty: backbone init from MODEL.BACKBONE.
_C.MODEL.WEIGHTS = ""
# Checkpoints (MODEL.WEIGHTS, OUTPUT_DIR/last_checkpoint) are read without unpickling code
# (torch.load weights_only): tensors, numbers, strings and containers only, all that DAAF-ReID's own
# checkpoints hold. True allows any pickle, which can run code hidden in the file: only for files
# you trust (e.g. a checkpoint of another toolbox that stores its config as an object).
_C.MODEL.TRUSTED_WEIGHTS = False
_C.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
_C.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "build_daaf_resnet_backbone"
_C.MODEL.BACKBONE.DEPTH = 50
# 2 as in ImageNet ResNets (TriNet, output stride 32); 1 for Bag of Tricks (output stride 16).
_C.MODEL.BACKBONE.LAST_STRIDE = 2
# Load ImageNet weights: from PRETRAIN_PATH when set, else through torchvision's weights API.
_C.MODEL.BACKBONE.PRETRAIN = True
_C.MODEL.BACKBONE.PRETRAIN_PATH = ""
_C.MODEL.BACKBONE.NORM = "BN"
# build_detectron2_backbone only: the detectron2 registry name and an optional detectron2 YAML.
_C.MODEL.BACKBONE.D2_NAME = "build_resnet_backbone"
_C.MODEL.BACKBONE.D2_CONFIG = ""

_C.MODEL.HEADS = CN()
_C.MODEL.HEADS.NAME = "TriNetHead"
# Number of training identities; 0 = taken from the training set when the model is built.
_C.MODEL.HEADS.NUM_CLASSES = 0
# TriNet head: GAP -> FC MID_DIM -> BN -> ReLU -> FC EMBEDDING_DIM.
_C.MODEL.HEADS.MID_DIM = 1024
_C.MODEL.HEADS.EMBEDDING_DIM = 128
# BNNeck head: test feature "before" or "after" the BN neck.
_C.MODEL.HEADS.NECK_FEAT = "after"
# L2-normalise the test embedding.
_C.MODEL.HEADS.NORM_FEAT = False

_C.MODEL.LOSSES = CN()
_C.MODEL.LOSSES.NAME = ["TripletLoss"]
_C.MODEL.LOSSES.TRI = CN()
# 0.0 = soft margin softplus(d_ap - d_an) (TriNet); > 0 = hinge with that margin (BoT 0.3).
_C.MODEL.LOSSES.TRI.MARGIN = 0.0
_C.MODEL.LOSSES.TRI.WEIGHT = 1.0
_C.MODEL.LOSSES.TRI.NORM_FEAT = False
_C.MODEL.LOSSES.CE = CN()
_C.MODEL.LOSSES.CE.EPSILON = 0.1
_C.MODEL.LOSSES.CE.WEIGHT = 1.0
_C.MODEL.LOSSES.CENTER = CN()
_C.MODEL.LOSSES.CENTER.WEIGHT = 0.0005

# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.FORMAT = "RGB"
# Images whose header declares more pixels are refused before they are decoded (decompression bombs).
_C.INPUT.MAX_IMAGE_PIXELS = 100_000_000
_C.INPUT.SIZE_TRAIN = [256, 128]
_C.INPUT.SIZE_TEST = [256, 128]
# Resize to this before the random crop to SIZE_TRAIN (TriNet: 288x144). Empty: no crop step.
_C.INPUT.CROP_FROM = []
_C.INPUT.FLIP = CN()
_C.INPUT.FLIP.ENABLED = True
_C.INPUT.FLIP.PROB = 0.5
_C.INPUT.PADDING = CN()
_C.INPUT.PADDING.ENABLED = False
_C.INPUT.PADDING.SIZE = 10
_C.INPUT.REA = CN()
_C.INPUT.REA.ENABLED = False
_C.INPUT.REA.PROB = 0.5
_C.INPUT.REA.AREA = [0.02, 0.4]
_C.INPUT.REA.ASPECT = 0.3

# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
_C.DATASETS.TEST = ()
# Root folder of all datasets. Empty: $DAAF_DATASETS, else ./datasets.
_C.DATASETS.ROOT = ""
# Your own datasets as "Name=path" entries (see daaf/data/datasets/custom.py); the names can then
# be used in TRAIN / TEST.
_C.DATASETS.CUSTOM = []
# Where person-label files live. Empty: <ROOT>/daaf_labels; a relative path is under the datasets
# root (like the dataset folders); an absolute path is used as it is.
_C.DATASETS.LABELS_DIR = ""

# ---------------------------------------------------------------------------------------------
# Data loader
# ---------------------------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Before training, check that every training image is whole (its header and end; cached per file
# list), and stop with one line listing those that are not; or, with SKIP_BAD_IMAGES, drop them
# with a warning.
_C.DATALOADER.CHECK_IMAGES = True
_C.DATALOADER.SKIP_BAD_IMAGES = False
# K: images per identity in a batch (batch = P x K).
_C.DATALOADER.NUM_INSTANCE = 4

# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CN()
# "iteration", or "epoch": then MAX_ITER, STEPS, WARMUP_ITERS, DECAY_START, CHECKPOINT_PERIOD and
# TEST.EVAL_PERIOD are given in epochs (BoT's schedule) and converted to iterations with
# len(training set) // IMS_PER_BATCH iterations per epoch when training starts.
_C.SOLVER.SCHEDULE_UNIT = "iteration"
_C.SOLVER.OPTIMIZER_NAME = "Adam"
_C.SOLVER.MAX_ITER = 25000
_C.SOLVER.BASE_LR = 3e-4
_C.SOLVER.BIAS_LR_FACTOR = 1.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 0.0
_C.SOLVER.WEIGHT_DECAY_BIAS = None
_C.SOLVER.ADAM_BETAS = (0.9, 0.999)
_C.SOLVER.ADAM_EPS = 1e-8

_C.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.WARMUP_FACTOR = 1.0
_C.SOLVER.WARMUP_ITERS = 0
_C.SOLVER.WARMUP_METHOD = "linear"
# ExponentialDecayLR (TriNet): constant until DECAY_START, then exponential down to
# DECAY_FACTOR x BASE_LR at MAX_ITER.
_C.SOLVER.DECAY_START = 15000
_C.SOLVER.DECAY_FACTOR = 0.001

# Center-loss centres: their own optimizer (BoT: SGD lr 0.5).
_C.SOLVER.CENTER_LR = 0.5

_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"  # "norm" or "value"
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# Total images per step over all processes (each gets IMS_PER_BATCH / world size).
_C.SOLVER.IMS_PER_BATCH = 72
_C.SOLVER.CHECKPOINT_PERIOD = 5000
_C.SOLVER.MAX_TO_KEEP = 0  # 0: keep every periodic checkpoint

_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False

# ---------------------------------------------------------------------------------------------
# Test
# ---------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EVAL_PERIOD = 0
_C.TEST.IMS_PER_BATCH = 128
_C.TEST.METRIC = "cosine"  # "cosine" or "euclidean"
_C.TEST.MAX_RANK = 50
# Queries per chunk when computing and ranking distances (bounds memory for any gallery size).
_C.TEST.CHUNK_SIZE = 512
# TriNet's test-time augmentation: resize to INPUT.CROP_FROM, average the 4 corner + centre
# crops of SIZE_TEST (and their flips with TEST.FLIP.ENABLED).
_C.TEST.FIVE_CROP = False
_C.TEST.FLIP = CN()
_C.TEST.FLIP.ENABLED = False
_C.TEST.RERANK = CN()
_C.TEST.RERANK.ENABLED = False
_C.TEST.RERANK.K1 = 20
_C.TEST.RERANK.K2 = 6
_C.TEST.RERANK.LAMBDA = 0.3
_C.TEST.PRECISE_BN = CN()
_C.TEST.PRECISE_BN.ENABLED = False
_C.TEST.PRECISE_BN.NUM_ITER = 200
_C.TEST.SAVE_RANKS = False

# ---------------------------------------------------------------------------------------------
# Pseudo-labelling (tools/train_net.py --pseudo-label): one person (mask + 17 COCO keypoints) per
# crop, written as COCO label files to DATASETS.LABELS_DIR.
# ---------------------------------------------------------------------------------------------
_C.PSEUDO_LABEL = CN()
# A PSEUDO_LABELER_REGISTRY name.
_C.PSEUDO_LABEL.NAME = "Detectron2Labeler"
# Splits labelled by --pseudo-label, for every dataset of DATASETS.TRAIN and DATASETS.TEST.
_C.PSEUDO_LABEL.SPLITS = ["train", "query", "gallery"]
# Before DAAF training, generate missing training label files (if a labeler can be built).
_C.PSEUDO_LABEL.AUTO = True
# Recompute label files that exist already.
_C.PSEUDO_LABEL.OVERWRITE = False
# Crops per forward pass. Batches pay off on a GPU; on a CPU one crop at a time is as fast or
# faster (benchmarks/bench_pseudo_label.py measures both).
_C.PSEUDO_LABEL.BATCH_SIZE = 8
# Empty: MODEL.DEVICE.
_C.PSEUDO_LABEL.DEVICE = ""
# Crops (~128x64) are upscaled for the detectors: short edge MIN_SIZE_TEST, long edge <= MAX_SIZE_TEST.
_C.PSEUDO_LABEL.MIN_SIZE_TEST = 384
_C.PSEUDO_LABEL.MAX_SIZE_TEST = 1333
# Person detections below this score are ignored.
_C.PSEUDO_LABEL.DETECTION_THRESH = 0.5
# A keypoint is visible (v = 2) when its score reaches this (detectron2's Visualizer uses 0.05).
_C.PSEUDO_LABEL.KEYPOINT_THRESH = 0.05
# Most detections kept per crop (a crop shows one person and maybe a few bystanders).
_C.PSEUDO_LABEL.DETECTIONS_PER_IMAGE = 10
# RPN proposals kept per crop for the box head (detectron2's 1000 is sized for crowded COCO scenes).
_C.PSEUDO_LABEL.PROPOSALS_PER_IMAGE = 100
# Minimum box IoU between the chosen person and the segmenter's person whose mask it takes.
_C.PSEUDO_LABEL.MASK_MATCH_IOU = 0.5

# ---------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output"
# < 0: a different random seed each run; >= 0: that seed (+ rank) for every process.
_C.SEED = -1
_C.CUDNN_BENCHMARK = False
# Iterations between writes of console / metrics.json / TensorBoard.
_C.LOG_PERIOD = 20

# ---------------------------------------------------------------------------------------------
# What each numeric or enumerated key allows, checked when a config is built (daaf.config.checks)
# ---------------------------------------------------------------------------------------------
_COUNT = Range(1, integer=True)  # a positive count: iterations, images, channels
_NON_NEGATIVE_INT = Range(0, integer=True)
_PROBABILITY = Range(0, 1)
_WEIGHT = Range(0)
_SIZE = ListOf(_COUNT, lengths=(2,))
_DEVICE = Matches(r"cpu|cuda(:\d+)?|mps", "'cpu', 'cuda' or 'cuda:<index>'")

declare_value_checks(
    {
        "VERSION": OneOf(1),
        "MODEL.DEVICE": _DEVICE,
        "MODEL.PIXEL_MEAN": ListOf(Range(), lengths=(3,)),
        "MODEL.PIXEL_STD": ListOf(Range(0, low_open=True), lengths=(3,)),
        "MODEL.BACKBONE.DEPTH": OneOf(18, 34, 50, 101, 152),
        "MODEL.BACKBONE.LAST_STRIDE": OneOf(1, 2),
        "MODEL.HEADS.NUM_CLASSES": _NON_NEGATIVE_INT,
        "MODEL.HEADS.MID_DIM": _COUNT,
        "MODEL.HEADS.EMBEDDING_DIM": _COUNT,
        "MODEL.HEADS.NECK_FEAT": OneOf("before", "after"),
        "MODEL.LOSSES.TRI.MARGIN": Range(0),
        "MODEL.LOSSES.TRI.WEIGHT": _WEIGHT,
        "MODEL.LOSSES.CE.EPSILON": Range(0, 1, high_open=True),
        "MODEL.LOSSES.CE.WEIGHT": _WEIGHT,
        "MODEL.LOSSES.CENTER.WEIGHT": _WEIGHT,
        "INPUT.FORMAT": OneOf("RGB", "BGR"),
        "INPUT.MAX_IMAGE_PIXELS": _COUNT,
        "INPUT.SIZE_TRAIN": _SIZE,
        "INPUT.SIZE_TEST": _SIZE,
        "INPUT.CROP_FROM": ListOf(_COUNT, lengths=(0, 2)),
        "INPUT.FLIP.PROB": _PROBABILITY,
        "INPUT.PADDING.SIZE": _NON_NEGATIVE_INT,
        "INPUT.REA.PROB": _PROBABILITY,
        "INPUT.REA.AREA": ListOf(Range(0, 1, low_open=True), lengths=(2,)),
        "INPUT.REA.ASPECT": Range(0, low_open=True),
        "DATALOADER.NUM_WORKERS": _NON_NEGATIVE_INT,
        "DATALOADER.NUM_INSTANCE": _COUNT,
        "SOLVER.SCHEDULE_UNIT": OneOf("iteration", "epoch"),
        "SOLVER.MAX_ITER": _COUNT,
        "SOLVER.BASE_LR": Range(0, low_open=True),
        "SOLVER.BIAS_LR_FACTOR": Range(0),
        "SOLVER.MOMENTUM": Range(0, 1, high_open=True),
        "SOLVER.WEIGHT_DECAY": Range(0),
        "SOLVER.WEIGHT_DECAY_BIAS": OrNone(Range(0)),
        "SOLVER.ADAM_BETAS": ListOf(Range(0, 1, high_open=True), lengths=(2,)),
        "SOLVER.ADAM_EPS": Range(0, low_open=True),
        "SOLVER.GAMMA": Range(0, low_open=True),
        "SOLVER.STEPS": ListOf(_NON_NEGATIVE_INT),
        "SOLVER.WARMUP_FACTOR": Range(0, 1, low_open=True),
        "SOLVER.WARMUP_ITERS": _NON_NEGATIVE_INT,
        "SOLVER.WARMUP_METHOD": OneOf("linear", "constant"),
        "SOLVER.DECAY_START": _NON_NEGATIVE_INT,
        "SOLVER.DECAY_FACTOR": Range(0, 1, low_open=True),
        "SOLVER.CENTER_LR": Range(0, low_open=True),
        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": OneOf("norm", "value"),
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": Range(0, low_open=True),
        "SOLVER.CLIP_GRADIENTS.NORM_TYPE": Range(0, low_open=True, allow_inf=True),
        "SOLVER.IMS_PER_BATCH": _COUNT,
        "SOLVER.CHECKPOINT_PERIOD": _COUNT,
        "SOLVER.MAX_TO_KEEP": _NON_NEGATIVE_INT,
        "TEST.EVAL_PERIOD": _NON_NEGATIVE_INT,
        "TEST.IMS_PER_BATCH": _COUNT,
        "TEST.METRIC": OneOf("cosine", "euclidean"),
        "TEST.MAX_RANK": _COUNT,
        "TEST.CHUNK_SIZE": _COUNT,
        "TEST.RERANK.K1": _COUNT,
        "TEST.RERANK.K2": _COUNT,
        "TEST.RERANK.LAMBDA": _PROBABILITY,
        "TEST.PRECISE_BN.NUM_ITER": _COUNT,
        "PSEUDO_LABEL.SPLITS": ListOf(OneOf("train", "query", "gallery")),
        "PSEUDO_LABEL.BATCH_SIZE": _COUNT,
        "PSEUDO_LABEL.DEVICE": Matches(r"|cpu|cuda(:\d+)?|mps", "'' (MODEL.DEVICE), 'cpu', 'cuda' or 'cuda:<index>'"),
        "PSEUDO_LABEL.MIN_SIZE_TEST": _COUNT,
        "PSEUDO_LABEL.MAX_SIZE_TEST": _COUNT,
        "PSEUDO_LABEL.DETECTION_THRESH": _PROBABILITY,
        "PSEUDO_LABEL.KEYPOINT_THRESH": Range(),
        "PSEUDO_LABEL.DETECTIONS_PER_IMAGE": _COUNT,
        "PSEUDO_LABEL.PROPOSALS_PER_IMAGE": _COUNT,
        "PSEUDO_LABEL.MASK_MATCH_IOU": _PROBABILITY,
        "SEED": Range(integer=True),
        "LOG_PERIOD": _COUNT,
    }
)
