"""ReID evaluation: rank metrics, distances, re-ranking, test-time augmentation, the evaluator and
the inference loop."""

from .backend import EVALUATION_BACKENDS, evaluation_backend
from .distance import compute_distance, compute_distance_chunks
from .evaluator import DatasetEvaluator, ReIDEvaluator, describe_model, print_csv_format, top_k
from .inference import extract_features, inference_context, inference_on_dataset
from .per_query import PER_QUERY_FILE, load_per_query, per_query_metric, save_per_query
from .rank import RankAccumulator, evaluate_rank
from .rerank import re_ranking, re_ranking_features
from .test_time_augmentation import embed_batch, five_crops, test_time_crops
