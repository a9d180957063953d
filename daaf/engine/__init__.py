from .defaults import (
    DefaultTrainer,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
    import_user_modules,
)
from .hooks import *  # noqa: F401,F403
from .launch import launch, launch_cli, run_reporting_user_errors
from .train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase
