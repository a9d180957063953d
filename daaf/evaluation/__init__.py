"""ReID evaluation: rank metrics, distances, re-ranking, the evaluator and the inference loop."""

from .distance import compute_distance, compute_distance_chunks
from .evaluator import (
    DatasetEvaluator,
    ReIDEvaluator,
    embed_batch,
    five_crops,
    inference_on_dataset,
    print_csv_format,
    top_k,
)
from .rank import RankAccumulator, evaluate_rank, evaluate_rank_chunks
from .rerank import re_ranking, re_ranking_features
