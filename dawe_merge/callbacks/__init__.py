"""Lightning callbacks the CLI adds to its runs: random-number state in checkpoints, the test report, predict's file."""
from dawe_merge.callbacks.prediction_writer import PredictionsJsonl
from dawe_merge.callbacks.random_state import RandomStateInCheckpoints
from dawe_merge.callbacks.report_writer import ReportWriter

__all__ = ["PredictionsJsonl", "RandomStateInCheckpoints", "ReportWriter"]
