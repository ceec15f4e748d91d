"""`morec study`: IDs or content on one prepared dataset, decided with the library's own training and verdict
statistics, reported in plain words (see :mod:`morec.study.study`)."""
from .study import Study, StudyError, StudyOptions, run_study

__all__ = ["Study", "StudyError", "StudyOptions", "run_study"]
