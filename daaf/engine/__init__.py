from .arguments import check_output_file, default_argument_parser, finite_float, inference_argument_parser, non_negative_int, positive_int
from .defaults import DefaultTrainer, create_ddp_model, default_setup, default_writers, inference_config
from .feature_extractor import FeatureExtractor
from .hooks import *  # noqa: F401,F403
from .inference_model import load_inference_model
from .launch import launch, launch_cli, run_command_line, run_reporting_user_errors
from .train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase
