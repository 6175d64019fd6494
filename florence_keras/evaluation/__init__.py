"""Evaluation and transfer protocols: zero-shot, retrieval, linear probe, few-shot (SPEC §4).

Metric code is numpy/scipy only and works on features from any encoder; `features` turns a dataset and an
`encode_images` callable into numpy arrays (with an on-disk cache); `encoded_data` reads evaluation data from
disk (every supported format) and encodes it with a `FlorenceCLIP`, for the recipes. Ties in every ranking follow one rule:
equal scores rank the lower index first (see `florence_keras.evaluation.metrics`).
"""

from florence_keras.evaluation.depth_metrics import DepthMetricsAccumulator
from florence_keras.evaluation.depth_metrics import depth_metrics
from florence_keras.evaluation.encoded_data import encode_captioned_images
from florence_keras.evaluation.encoded_data import encode_labelled_images
from florence_keras.evaluation.encoded_data import encode_texts_cached
from florence_keras.evaluation.features import encode_image_dataset
from florence_keras.evaluation.features import encode_texts_in_batches
from florence_keras.evaluation.features import feature_cache_key
from florence_keras.evaluation.features import load_or_compute_features
from florence_keras.evaluation.features import path_fingerprint
from florence_keras.evaluation.few_shot import Episode
from florence_keras.evaluation.few_shot import EpisodeError
from florence_keras.evaluation.few_shot import few_shot_evaluate
from florence_keras.evaluation.few_shot import few_shot_sweep
from florence_keras.evaluation.few_shot import mean_confidence_interval
from florence_keras.evaluation.few_shot import sample_episode
from florence_keras.evaluation.linear_probe import LogisticRegressionModel
from florence_keras.evaluation.linear_probe import fit_logistic_regression
from florence_keras.evaluation.linear_probe import linear_probe_evaluate
from florence_keras.evaluation.linear_probe import stratified_split
from florence_keras.evaluation.linear_probe import sweep_regularization
from florence_keras.evaluation.metrics import classification_metrics
from florence_keras.evaluation.metrics import confusion_matrix
from florence_keras.evaluation.metrics import per_class_accuracy
from florence_keras.evaluation.metrics import target_ranks
from florence_keras.evaluation.metrics import top_k_accuracy
from florence_keras.evaluation.metrics import top_k_indices
from florence_keras.evaluation.plots import plot_accuracy_vs_shots
from florence_keras.evaluation.plots import plot_confusion_matrix
from florence_keras.evaluation.plots import plot_image_to_text_results
from florence_keras.evaluation.plots import plot_text_to_image_results
from florence_keras.evaluation.reporting import markdown_table
from florence_keras.evaluation.reporting import percent
from florence_keras.evaluation.reporting import write_json
from florence_keras.evaluation.reporting import write_markdown
from florence_keras.evaluation.reporting import write_report
from florence_keras.evaluation.retrieval import group_captions
from florence_keras.evaluation.retrieval import recall_at_k
from florence_keras.evaluation.retrieval import retrieval_metrics
from florence_keras.evaluation.retrieval import retrieval_metrics_from_similarity
from florence_keras.evaluation.retrieval import retrieval_ranks
from florence_keras.evaluation.retrieval import retrieval_ranks_from_similarity
from florence_keras.evaluation.retrieval import retrieve_top_k
from florence_keras.evaluation.zero_shot import build_zero_shot_classifier
from florence_keras.evaluation.zero_shot import imagenet_class_names
from florence_keras.evaluation.zero_shot import load_templates
from florence_keras.evaluation.zero_shot import readable_class_names
from florence_keras.evaluation.zero_shot import zero_shot_accuracy
from florence_keras.evaluation.zero_shot import zero_shot_classify
from florence_keras.evaluation.zero_shot import zero_shot_scores
