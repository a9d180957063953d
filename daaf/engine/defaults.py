"""What a training script needs (``default_setup``, ``DefaultTrainer``) and what an inference tool
needs (``inference_config``). ``tools/train_net.py`` is a thin wrapper over these, as in detectron2.
"""

import json
import logging
import os
import weakref
from collections import OrderedDict
from typing import Sequence

import torch
from torch.nn.parallel import DistributedDataParallel

from daaf.config import CfgNode, build_config
from daaf.utils import comm
from daaf.utils.checkpoint import DAAFCheckpointer
from daaf.utils.env import collect_env_info, keep_freed_cpu_memory, seed_all_rng
from daaf.utils.errors import ConfigError, UserError
from daaf.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from daaf.utils.file_io import PathManager, atomic_write, sweep_stale_temp_files, truncate_json_lines, writable_folder
from daaf.utils.logger import setup_logger

from . import hooks
from .run_folder import claim_run_folder
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = ["default_setup", "inference_config", "default_writers", "create_ddp_model", "DefaultTrainer"]


def _trains(args) -> bool:
    return not (getattr(args, "eval_only", False) or getattr(args, "pseudo_label", False))


def default_setup(cfg: CfgNode, args) -> None:
    """Create OUTPUT_DIR and, for a training, claim it (:func:`claim_run_folder`: one writer, one
    run); set up logging (log.txt), log the environment, the arguments and the config, seed every
    RNG (SEED + rank), keep freed CPU memory for reuse (:func:`keep_freed_cpu_memory`) and set
    cudnn.benchmark. An evaluation writes its config to
    OUTPUT_DIR/inference/config.yaml; a training's config.yaml is written by the trainer once it is
    built (:meth:`DefaultTrainer.save_config`), so a run that fails its checks writes no record.
    ``cfg`` comes from :func:`daaf.config.build_config`, which imported cfg.IMPORTS."""
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        writable_folder(output_dir, "OUTPUT_DIR")
        if _trains(args):
            claim_run_folder(output_dir, resume=bool(getattr(args, "resume", False)), start_over=bool(getattr(args, "start_over", False)))
    comm.synchronize()
    setup_logger(output_dir, distributed_rank=rank, name="daaf")
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    logger = logging.getLogger("daaf")

    logger.info(f"This is process {rank} of {comm.get_world_size()}")
    logger.info("Software and hardware:\n" + collect_env_info())
    logger.info("Arguments: " + str(args))
    if hasattr(args, "config_file") and args.config_file:
        with PathManager.open(args.config_file, "r") as f:
            logger.info(f"Config file {args.config_file}:\n{f.read()}")

    if comm.is_main_process() and output_dir and not _trains(args):
        # An evaluation must not change the training run's record (config.yaml is what it was
        # trained with): its config goes beside its results.
        folder = "inference" if getattr(args, "eval_only", False) else "pseudo_label"
        _write_config(cfg, os.path.join(output_dir, folder, "config.yaml"))

    if keep_freed_cpu_memory():
        logger.info("CPU memory: freed memory is kept for reuse (DAAF_KEEP_FREED_MEMORY=0 returns it to the system)")
    seed = seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)
    logger.info(f"Using random seed {seed}")
    if not (hasattr(args, "eval_only") and args.eval_only):
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK


def _write_config(cfg: CfgNode, path: str) -> None:
    PathManager.mkdirs(os.path.dirname(path))
    with atomic_write(path, "w") as f:
        f.write(cfg.dump())
    logging.getLogger("daaf").info(f"The merged config is in {path}")


def inference_config(config_file: str, opts: Sequence[str] = ()):
    """The frozen config of an inference tool: :func:`daaf.config.build_config` of ``config_file``
    and the KEY VALUE ``opts``, with the console logger set up."""
    setup_logger(name="daaf")
    return build_config(config_file, opts)


def default_writers(output_dir: str, max_iter: int, window_size: int = 20) -> list:
    """Console printer, ``metrics.json`` and TensorBoard writers for ``output_dir``."""
    PathManager.mkdirs(output_dir)
    return [
        CommonMetricPrinter(max_iter, window_size=window_size),
        JSONWriter(os.path.join(output_dir, "metrics.json"), window_size=window_size),
        TensorboardXWriter(output_dir, window_size=window_size),
    ]


def create_ddp_model(model, **kwargs):
    """Wrap in DistributedDataParallel when more than one process runs (CPU/gloo or GPU)."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).is_cuda:
        kwargs.setdefault("device_ids", [comm.get_local_rank()])
    return DistributedDataParallel(model, **kwargs)


class DefaultTrainer(TrainerBase):
    """The trainer ``tools/train_net.py`` uses: builds model, optimizer, scheduler, loaders and
    hooks from the config; writes checkpoints, metrics.json and TensorBoard events to OUTPUT_DIR.

    Each ``build_*`` classmethod can be overridden by a subclass, as in detectron2.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__()
        logger = logging.getLogger("daaf")
        if not logger.isEnabledFor(logging.INFO):
            setup_logger()
        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        model = create_ddp_model(model)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer, grad_clipper=self.build_grad_clipper(cfg))
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DAAFCheckpointer(model, cfg.OUTPUT_DIR, trusted=cfg.MODEL.TRUSTED_WEIGHTS, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def save_config(self) -> None:
        """Write the run's config to OUTPUT_DIR/config.yaml (main process), when :meth:`train`
        starts work: after the loader, the model and the optimizer are built, so a run that fails
        its checks leaves no record, and a finished run resumed rewrites nothing."""
        if comm.is_main_process() and self.cfg.OUTPUT_DIR:
            _write_config(self.cfg, os.path.join(self.cfg.OUTPUT_DIR, "config.yaml"))

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and a ``last_checkpoint`` in OUTPUT_DIR: restore model, optimizer,
        scheduler and iteration. Otherwise load MODEL.WEIGHTS (if set) into the model only."""
        if comm.is_main_process() and self.cfg.OUTPUT_DIR:
            for path in sweep_stale_temp_files(self.cfg.OUTPUT_DIR):
                logging.getLogger(__name__).info(f"Removed {path}, a partial file of a killed run")
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume:
            # killed before its first checkpoint, a run starts over at 0 and writes every line again
            self.start_iter = self.iter + 1 if self.checkpointer.has_checkpoint() else 0
            if comm.is_main_process() and self.start_iter < self.max_iter:
                # the iterations after the checkpoint are trained again: one line per iteration
                dropped = truncate_json_lines(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), self.start_iter)
                if dropped:
                    logging.getLogger(__name__).info(
                        f"metrics.json: dropped {dropped} lines from iteration {self.start_iter} on, trained again now"
                    )

    @classmethod
    def load_for_evaluation(cls, cfg, model, resume: bool = False) -> str:
        """For --eval-only: load into ``model`` the last checkpoint of OUTPUT_DIR (with ``resume``,
        when there is one) or else MODEL.WEIGHTS, exactly (:meth:`DAAFCheckpointer.load_exactly`): a
        checkpoint of another architecture is a one-line error, not a meaningless evaluation.
        Returns the path loaded."""
        checkpointer = DAAFCheckpointer(model, save_dir=cfg.OUTPUT_DIR, trusted=cfg.MODEL.TRUSTED_WEIGHTS)
        path = checkpointer.get_checkpoint_file() if resume and checkpointer.has_checkpoint() else cfg.MODEL.WEIGHTS
        if not path:
            raise UserError(
                "--eval-only evaluates MODEL.WEIGHTS, which is empty: give MODEL.WEIGHTS <checkpoint> (or --resume with a last_checkpoint in OUTPUT_DIR)"
            )
        checkpointer.load_exactly(path)
        return path

    def build_hooks(self) -> list:
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0  # precise BN reads a few batches; no worker start-up
        ret = [hooks.IterationTimer(), hooks.LRScheduler()]
        if cfg.TEST.PRECISE_BN.ENABLED:
            ret.append(hooks.PreciseBN(cfg.TEST.EVAL_PERIOD, self.model, self.build_train_loader(cfg), cfg.TEST.PRECISE_BN.NUM_ITER))

        def test_and_save_results():
            final = self.iter >= self.max_iter - 1  # the final evaluation: model_final.pth is written
            weights = self.checkpointer.get_checkpoint_file() if final else ""
            self._last_eval_results = self.test(self.cfg, self.model, iteration=self.iter, weights=weights)
            return self._last_eval_results

        if cfg.DATASETS.TEST:
            ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            # the metrics line of an iteration is written before its checkpoint: a run killed
            # between the two resumes from an earlier checkpoint and writes that line again, where
            # the other order would lose it (metrics.json keeps one line per iteration)
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.LOG_PERIOD))
            max_to_keep = cfg.SOLVER.MAX_TO_KEEP if cfg.SOLVER.MAX_TO_KEEP > 0 else None
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD, max_to_keep=max_to_keep))
        return ret

    def build_writers(self) -> list:
        return default_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def final_evaluation_written(self) -> bool:
        """Whether OUTPUT_DIR/inference/results.json holds the evaluation after the last iteration
        (a run is finished when that is written, not when its last step is)."""
        path = os.path.join(self.cfg.OUTPUT_DIR, "inference", "results.json")
        try:
            with open(path) as f:
                iteration = json.load(f).get("iteration")
        except (OSError, ValueError, AttributeError):
            return False
        return isinstance(iteration, int) and iteration >= self.max_iter - 1

    def train(self):
        """Train to SOLVER.MAX_ITER; returns the last evaluation results (if any). A run resumed
        at SOLVER.MAX_ITER whose final evaluation was not written (killed during it) evaluates;
        otherwise it trains nothing and writes nothing, and says so."""
        if self.start_iter == self.max_iter and self.cfg.DATASETS.TEST and not self.final_evaluation_written():
            logging.getLogger(__name__).info("Training finished but its final evaluation was not written: evaluating now")
            self.save_config()
            super().train(self.max_iter, self.max_iter)  # no step; the hooks' after_train evaluates and writes
            return getattr(self, "_last_eval_results", None)
        if self.start_iter >= self.max_iter:
            done = self.start_iter - 1  # the iteration of the checkpoint it resumed from
            if done + 1 == self.max_iter:
                message = f"Training already finished (iteration {done} of SOLVER.MAX_ITER {self.max_iter}): nothing to do"
            else:
                message = (
                    f"The checkpoint is at iteration {done}, past SOLVER.MAX_ITER {self.max_iter}: nothing to train "
                    f"(raise SOLVER.MAX_ITER to train further)"
                )
            logging.getLogger(__name__).warning(message)
            return None
        self.save_config()
        super().train(self.start_iter, self.max_iter)
        return getattr(self, "_last_eval_results", None)

    def run_step(self):
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self):
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        batch_sampler = getattr(self.data_loader, "batch_sampler", None)
        if hasattr(batch_sampler, "state_dict"):
            ret["data"] = batch_sampler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict["_trainer"])
        # the data stream goes on after the batches the checkpoint's iterations trained on
        batch_sampler = getattr(self.data_loader, "batch_sampler", None)
        logger = logging.getLogger(__name__)
        if hasattr(batch_sampler, "resume") and "data" in state_dict:
            batch_sampler.resume(state_dict["data"], start_batch=self.iter + 1)
            logger.info(f"Data stream resumed at batch {self.iter + 1} (seed {state_dict['data']['seed']})")
        else:
            logger.warning("The data stream starts over: the checkpoint or the training loader keeps no stream position")

    # ---- delegation so hooks can use trainer.model / trainer.optimizer ----
    @property
    def model(self):
        return self._trainer.model

    @property
    def optimizer(self):
        return self._trainer.optimizer

    @property
    def data_loader(self):
        return self._trainer.data_loader

    def register_hooks(self, hooks_list):
        super().register_hooks(hooks_list)
        self._trainer._hooks = self._hooks  # after_backward hooks run inside the inner trainer

    # ---- builders: override in a subclass to customise ----
    @classmethod
    def build_model(cls, cfg):
        from daaf.modeling import build_model, count_parameters

        model = build_model(cfg)
        logger = logging.getLogger("daaf")
        logger.info(f"Model: {type(model).__name__}, {count_parameters(model):,} parameters (structure in log.txt)")
        logger.debug(f"Model:\n{model}")  # the file handler takes DEBUG, the console INFO
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        from daaf.solver import build_optimizer

        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        from daaf.solver import build_lr_scheduler

        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_grad_clipper(cls, cfg):
        from daaf.solver import build_grad_clipper

        return build_grad_clipper(cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        """The P x K loader, serving the batch fields the model trains on (``model_input_fields``)."""
        from daaf.data import build_reid_train_loader
        from daaf.modeling import model_input_fields

        return build_reid_train_loader(cfg, input_fields=model_input_fields(cfg))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """Returns (loader over query + gallery, number of queries)."""
        from daaf.data import build_reid_test_loader

        return build_reid_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, num_query, output_dir=None, model_name=""):
        """A ReIDEvaluator reporting the CMC ranks the dataset's protocol asks for; ``model_name``
        labels its CMC curve."""
        from daaf.data import dataset_report_ranks
        from daaf.evaluation import ReIDEvaluator

        return ReIDEvaluator(
            cfg,
            num_query,
            dataset_name=dataset_name,
            output_dir=output_dir,
            report_ranks=dataset_report_ranks(dataset_name),
            model_name=model_name,
        )

    @classmethod
    def auto_scale_hyperparams(cls, cfg, data_loader):
        """Fill MODEL.HEADS.NUM_CLASSES from the training set when it is 0, and convert an
        epoch-based schedule (SOLVER.SCHEDULE_UNIT "epoch") to iterations."""
        logger = logging.getLogger("daaf")
        dataset = getattr(data_loader, "dataset", None)
        num_classes = getattr(dataset, "num_classes", None)
        frozen = cfg.is_frozen()
        cfg = cfg.clone()
        cfg.defrost()
        if cfg.MODEL.HEADS.NUM_CLASSES == 0 and num_classes:
            cfg.MODEL.HEADS.NUM_CLASSES = int(num_classes)
            logger.info(f"MODEL.HEADS.NUM_CLASSES set to {num_classes} from the training set")
        if cfg.SOLVER.CHECKPOINT_PERIOD < 1:  # fvcore's checkpointer would divide by it
            raise ConfigError(
                f"SOLVER.CHECKPOINT_PERIOD: expected a positive period (in {cfg.SOLVER.SCHEDULE_UNIT}s), got {cfg.SOLVER.CHECKPOINT_PERIOD}"
            )
        if cfg.SOLVER.SCHEDULE_UNIT == "epoch":
            iters = max(len(dataset) // cfg.SOLVER.IMS_PER_BATCH, 1)
            s = cfg.SOLVER
            s.MAX_ITER, s.WARMUP_ITERS, s.DECAY_START = s.MAX_ITER * iters, s.WARMUP_ITERS * iters, s.DECAY_START * iters
            s.STEPS = tuple(step * iters for step in s.STEPS)
            s.CHECKPOINT_PERIOD *= iters
            cfg.TEST.EVAL_PERIOD *= iters
            s.SCHEDULE_UNIT = "iteration"
            logger.info(
                f"Epoch schedule: {iters} iterations per epoch -> MAX_ITER {s.MAX_ITER}, STEPS {s.STEPS}, "
                f"WARMUP_ITERS {s.WARMUP_ITERS}, CHECKPOINT_PERIOD {s.CHECKPOINT_PERIOD}, EVAL_PERIOD {cfg.TEST.EVAL_PERIOD}"
            )
        elif cfg.SOLVER.SCHEDULE_UNIT != "iteration":
            raise ConfigError(f"SOLVER.SCHEDULE_UNIT: expected 'iteration' or 'epoch', got '{cfg.SOLVER.SCHEDULE_UNIT}'")
        if frozen:
            cfg.freeze()
        return cfg

    @classmethod
    def test(cls, cfg, model, evaluators=None, iteration=None, weights=None) -> OrderedDict:
        """Evaluate ``model`` on every dataset of DATASETS.TEST; returns {dataset: {metric: value}},
        also written (main process) to OUTPUT_DIR/inference/results.json as {"weights": the
        checkpoint evaluated (default MODEL.WEIGHTS; "" for a model between checkpoints),
        "iteration": the training iteration it is at (None for an evaluation of given weights),
        "results": {dataset: {metric: value}}}."""
        from daaf.evaluation import describe_model, inference_on_dataset, print_csv_format, test_time_crops

        logger = logging.getLogger("daaf")
        results = OrderedDict()
        crops = test_time_crops(cfg)
        for idx, dataset_name in enumerate(cfg.DATASETS.TEST):
            data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
            if evaluators is not None:
                evaluator = evaluators[idx]
            else:
                evaluator = cls.build_evaluator(
                    cfg,
                    dataset_name,
                    num_query,
                    output_dir=os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name),
                    model_name=describe_model(model, cfg.OUTPUT_DIR),
                )
            results_i = inference_on_dataset(model, data_loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED, crops=crops)
            results[dataset_name] = results_i
            if comm.is_main_process():
                logger.info(f"Evaluation results for {dataset_name}:\n" + print_csv_format(results_i))
        if comm.is_main_process() and cfg.OUTPUT_DIR and results:
            with atomic_write(os.path.join(cfg.OUTPUT_DIR, "inference", "results.json"), "w") as f:
                evaluated = cfg.MODEL.WEIGHTS if weights is None else weights
                json.dump({"weights": evaluated, "iteration": iteration, "results": results}, f, indent=2)
        return results
